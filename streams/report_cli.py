"""`engage report FILE`: population health of an event history — weekly cohort retention,
repurchase and referral rates, DAU/MAU stickiness (definitions in scoring/population.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from scoring.population import PopulationTally
from streams.cli import _config_arg, _load_config
from streams.offline_inputs import EventScan, file_lines, valid_events
from streams.tables import percent, render_table

NAME = "report"
HELP = "population health of an event file: cohort retention, repurchase, referral, DAU/MAU"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="events JSONL(.gz) as `engage replay` reads")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _config_arg(p)


def run(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    scan = EventScan(args.input)
    tally = PopulationTally()
    for event in valid_events(file_lines(args.input, "events"), config, scan):
        tally.add(event.user_id, event.type, event.ts_ms, event.event_id)
    scan.require_some()
    report = tally.report()
    print(json.dumps(report, indent=2) if args.json else _human(report))
    return 0


def _human(r: dict[str, Any]) -> str:
    rep, ref, st = r["repurchase"], r["referral"], r["stickiness"]
    lines = [
        f"{r['users']} users, {r['events']} valid events, {r['first_day']} to {r['last_day']}",
        "",
        f"repurchase rate  {percent(rep['rate'])}  ({rep['repeat_purchasers']} of "
        f"{rep['purchasers']} purchasers bought again)",
        f"referral rate    {percent(ref['rate'])}  ({ref['referrers']} of {ref['users']} users "
        "referred someone)",
        f"DAU/MAU          {percent(st['dau_mau'])}  (mean DAU {st['mean_dau']:.1f} / MAU "
        f"{st['mau']}, {st['window_days']} days {st['window_start']} to {st['window_end']})",
        "",
        "Retention by weekly cohort (first active week, Mondays UTC): share active k weeks later",
    ]
    cohorts = r["retention"]["cohorts"]
    weeks = max(len(c["retention"]) for c in cohorts)
    header = ["cohort", "users", *(f"w{k}" for k in range(weeks))]
    rows = [[c["week"], str(c["users"]),
             *(percent(share, 0) for share in c["retention"]),
             *([""] * (weeks - len(c["retention"])))] for c in cohorts]
    lines.append(render_table(header, rows, "lr" + "r" * weeks))
    if not r["retention"]["last_week_complete"]:
        lines.append(f"(the last week is partial: the history ends on {r['last_day']})")
    return "\n".join(lines)
