"""`engage what-if FILE --config NEW.toml`: replay a history under today's rules and under
proposed ones, and show which triggers and users the change adds or removes, per type and
tier, and what it does to the number of treatment triggers sent per day (the budget).

Both runs are plain `run_replay` calls (churn models included, as `engage replay` does), so
the comparison is as exact as a replay: the live worker would differ only where replay and
stream differ. The comparison itself is scoring/trigger_diff.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from scoring.config import EngageConfig
from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms
from scoring.trigger_diff import ALL_TIERS, DiffRow, diff_triggers, treatment_budget
from scoring.trigger_records import TriggerRecord
from streams.cli import _load_config
from streams.offline_inputs import (
    EventScan,
    file_lines,
    read_triggers,
    require_file,
    valid_events,
)
from streams.tables import render_table

NAME = "what-if"
HELP = "replay history under proposed rules: triggers and users added/removed, budget"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="events JSONL(.gz) as `engage replay` reads")
    p.add_argument("--config", required=True, metavar="NEW.toml", help="the proposed rules file")
    p.add_argument("--base", metavar="FILE", default=None,
                   help="today's rules file (default: the built-in defaults)")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")


def _history_days(path: str, config: EngageConfig) -> tuple[int, int, int]:
    """(first UTC day, last UTC day, calendar days from first to last inclusive)."""
    scan = EventScan(path)
    first = last = None
    for event in valid_events(file_lines(path, "events"), config, scan):
        day = event.ts_ms // MS_PER_DAY
        first = day if first is None else min(first, day)
        last = day if last is None else max(last, day)
    scan.require_some()
    assert first is not None and last is not None
    return first, last, last - first + 1


def _replayed_triggers(path: str, config: EngageConfig, label: str,
                       workdir: Path) -> list[TriggerRecord]:
    from streams.replay import run_replay  # imports river: only when the command runs

    print(f"replaying {path} under the {label} rules...", file=sys.stderr, flush=True)
    out = workdir / f"{label}.triggers.jsonl"
    run_replay(path, config, triggers_path=out, progress=False)
    return read_triggers(file_lines(str(out), f"{label} triggers"), f"{label} triggers")


def run(args: argparse.Namespace) -> int:
    base_config = _load_config(args.base)
    proposed_config = _load_config(args.config)
    require_file(args.input, "events")
    first, last, days = _history_days(args.input, base_config)
    with tempfile.TemporaryDirectory(prefix="engage-what-if-") as tmp:
        base = _replayed_triggers(args.input, base_config, "base", Path(tmp))
        proposed = _replayed_triggers(args.input, proposed_config, "proposed", Path(tmp))
    rows = diff_triggers(base, proposed, [level.name for level in proposed_config.tiers.levels])
    result: dict[str, Any] = {
        "input": args.input,
        "base": args.base or "built-in defaults",
        "proposed": args.config,
        "first_day": format_rfc3339_ms(first * MS_PER_DAY)[:10],
        "last_day": format_rfc3339_ms(last * MS_PER_DAY)[:10],
        "rows": [row.to_json(days) for row in rows],
        "budget": treatment_budget(rows, days),
    }
    print(json.dumps(result, indent=2) if args.json else _human(result, rows))
    return 0


def _signed(count: int, sign: str) -> str:
    return f"{sign}{count}" if count else "0"


def _human(result: dict[str, Any], rows: list[DiffRow]) -> str:
    budget = result["budget"]
    lines = [
        f"What-if over {result['input']}: {budget['days']} days, {result['first_day']} to "
        f"{result['last_day']}",
        f"base: {result['base']}; proposed: {result['proposed']}",
        "",
    ]
    changed_types = {r.type for r in rows if r.changed}
    shown = [r for r in rows if r.type in changed_types and (r.tier == ALL_TIERS or r.changed)]
    if shown:
        header = ["type", "tier", "triggers", "added", "removed", "users", "added", "removed",
                  "treated/day"]
        table = [[
            r.type, r.tier, f"{r.base_triggers} -> {r.proposed_triggers}",
            _signed(r.triggers_added, "+"), _signed(r.triggers_removed, "-"),
            f"{r.base_users} -> {r.proposed_users}",
            _signed(r.users_added, "+"), _signed(r.users_removed, "-"),
            f"{r.base_treatment / budget['days']:.2f} -> "
            f"{r.proposed_treatment / budget['days']:.2f}",
        ] for r in shown]
        lines.append(render_table(header, table, "llrrrrrrr"))
    else:
        lines.append("No trigger changes.")
    unchanged = [f"{r.type} ({r.base_triggers})" for r in rows
                 if r.tier == ALL_TIERS and r.type not in changed_types]
    if unchanged:
        lines += ["", "unchanged: " + ", ".join(unchanged)]
    lines += [
        "",
        f"Budget: {budget['base_per_day']:.2f} -> {budget['proposed_per_day']:.2f} treatment "
        f"triggers per day ({budget['change_per_day']:+.2f}); the rules file has no reward "
        "costs, so the budget is counted in triggers.",
    ]
    return "\n".join(lines)
