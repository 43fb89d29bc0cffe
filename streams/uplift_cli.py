"""`engage uplift`: the measured effect of each trigger type, treatment against its holdout.

Reads triggers as `engage replay --triggers` writes them and the events `engage replay`
reads (JSONL or .gz), or with --from-kafka the topics `triggers.audit` (which carries both
variants) and the interactions topic. The statistics are in scoring/uplift.py; how to run
and read an experiment is in docs/growth.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterable

from scoring.config import EngageConfig
from scoring.timeutil import format_rfc3339_ms
from scoring.trigger_records import type_rank
from scoring.uplift import (
    CONFIDENCE,
    RETURNED,
    OutcomeLog,
    UpliftRow,
    first_assignments,
    measure_uplift,
)
from streams.cli import UsageError, _broker_arg, _config_arg, _load_config
from streams.offline_inputs import (
    EventScan,
    file_lines,
    read_triggers,
    require_file,
    valid_events,
)
from streams.settings import env_broker
from streams.tables import p_value, percent, points, render_table
from streams.topics import TopicNames

NAME = "uplift"
HELP = "measured uplift per trigger type: treatment against holdout control (offline)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--triggers", metavar="FILE",
                   help="triggers JSONL(.gz) as `engage replay --triggers` writes them")
    p.add_argument("--events", metavar="FILE", help="events JSONL(.gz) as `engage replay` reads")
    p.add_argument("--window-days", type=float, default=7.0, metavar="DAYS",
                   help="outcome window after each user's first trigger of a type (default 7)")
    p.add_argument("--outcome", nargs="+", default=[RETURNED], metavar="OUTCOME",
                   help="'returned' (any valid event) or an event type such as 'purchase'; "
                   "several allowed (default: returned)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per row")
    _config_arg(p)
    p.add_argument("--from-kafka", action="store_true",
                   help="read triggers.audit and the interactions topic instead of files")
    _broker_arg(p)
    p.add_argument("--topic-prefix", default=os.environ.get("ENGAGE_TOPIC_PREFIX", ""),
                   help="with --from-kafka: as given to the worker (default $ENGAGE_TOPIC_PREFIX)")
    p.add_argument("--input-topic", default="interactions",
                   help="with --from-kafka: the worker's input topic (default interactions)")


def _outcomes(requested: list[str], config: EngageConfig) -> list[str]:
    unknown = [o for o in requested if o != RETURNED and o not in config.event_types]
    if unknown:
        raise UsageError(f"--outcome {unknown[0]!r} is neither 'returned' nor a configured event "
                         f"type ({', '.join(sorted(config.event_types))})")
    return list(dict.fromkeys(requested))


def _sources(args: argparse.Namespace) -> tuple[Iterable[bytes], str, Iterable[bytes], str]:
    """(trigger records, their name, event records, their name) from files or topics."""
    if args.from_kafka:
        if args.triggers or args.events:
            raise UsageError("--from-kafka reads topics: leave out --triggers and --events")
        from streams.topic_reader import topic_values

        broker = args.broker or env_broker()
        names = TopicNames(prefix=args.topic_prefix, input=args.input_topic)
        triggers = list(topic_values(broker, names.audit))
        events = topic_values(broker, names.interactions)
        return triggers, f"topic {names.audit}", events, f"topic {names.interactions}"
    if not (args.triggers and args.events):
        raise UsageError("give --triggers FILE and --events FILE (or --from-kafka)")
    require_file(args.triggers, "triggers")
    require_file(args.events, "events")
    return (file_lines(args.triggers, "triggers"), args.triggers,
            file_lines(args.events, "events"), args.events)


def run(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    outcomes = _outcomes(args.outcome, config)
    if not (math.isfinite(args.window_days) and args.window_days > 0):
        raise UsageError(f"--window-days must be a positive number of days, got {args.window_days}")
    trigger_lines, trigger_source, event_lines, event_source = _sources(args)
    assignments = first_assignments(read_triggers(trigger_lines, trigger_source))
    log = OutcomeLog(outcomes, {user for users in assignments.values() for user in users})
    scan = EventScan(event_source)
    for event in valid_events(event_lines, config, scan):
        log.add(event.user_id, event.type, event.ts_ms)
    scan.require_some()
    rows = sorted((row for outcome in outcomes
                   for row in measure_uplift(assignments, log, outcome, args.window_days)),
                  key=lambda row: type_rank(row.type))
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
    else:
        print(_human(rows, log, scan, args.window_days, trigger_source))
    return 0


def _human(rows: list[UpliftRow], log: OutcomeLog, scan: EventScan, window_days: float,
           trigger_source: str) -> str:
    start, end = log.observed_from_ms, log.observed_until_ms
    span = f"{format_rfc3339_ms(start)} to {format_rfc3339_ms(end)}" if start and end else "-"
    rejected = sum(scan.invalid.values())
    lines = [
        f"Outcome within {window_days:g} days of each user's first trigger of a type; users "
        f"counted in the group that trigger assigned (intent to treat).",
        f"Events: {scan.valid} valid, {rejected} rejected, from {span}; users whose window "
        f"is not inside that span are censored (left out).",
        "",
    ]
    if not rows:
        return "\n".join([*lines, f"No triggers in {trigger_source}."])
    ci = f"{round(CONFIDENCE * 100)}% CI (pp)"
    header = ["type", "outcome", "treated", "conv", "rate", "control", "conv", "rate",
              "uplift (pp)", ci, "p-value", "censored"]
    table = []
    for r in rows:
        c = r.comparison
        if c.ci_low is None:
            interval = ("no control group" if r.treatment.users
                        else "no treatment group" if r.control.users else "no users")
        else:
            interval = f"[{points(c.ci_low)}, {points(c.ci_high)}]"
        table.append([
            r.type, r.outcome,
            str(r.treatment.users), str(r.treatment.converted), percent(r.treatment.rate),
            str(r.control.users), str(r.control.converted), percent(r.control.rate),
            points(c.uplift), interval, p_value(c.p_value) + ("*" if c.small_sample else ""),
            str(r.censored),
        ])
    lines.append(render_table(header, table, "llrrrrrrrrrr"))
    if any(r.comparison.small_sample for r in rows):
        lines += ["", "* a group is too small for the normal approximation (an expected count "
                  "below 5): treat the interval and p-value as rough; see docs/growth.md"]
    return "\n".join(lines)
