"""`engage backtest FILE --cutoff T --horizon D`: how well would the churn model have ranked?

Replays the history up to the cut-off exactly as `engage replay` does (the in-process churn
loop learns as the live trainer would), refits the BG/NBD parameters the model uses at the
cut-off and publishes the champion as it stands, then scores every user in the churn
population. The events after the cut-off give the labels: churned when no return follows
within the horizon. The same users are ranked by days of silence and by BG/NBD fitted on the
same history (scoring/churn/backtest.py), and the three are printed side by side: ROC AUC,
PR AUC, Brier, ECE with the decile calibration table, capture and lift at the top 10 % and
20 %. FILE is engage events (JSONL, .gz allowed) or a purchase table in the CDNOW layout
(streams/purchase_file.py), told apart by the first line unless --format says.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from scoring.churn.lifetime import summary_at
from scoring.config import EngageConfig
from scoring.events import Event
from scoring.records import ChurnExample
from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms, parse_rfc3339_ms
from sinks.argtypes import positive_int
from streams.cli import UsageError, _load_config
from streams.collector import no_cyclic_gc
from streams.offline_inputs import require_file
from streams.purchase_file import PurchaseFileError, purchase_events, read_purchases
from streams.tables import render_table

NAME = "backtest"
HELP = "replay to a cut-off, predict churn, score against what followed (vs recency, BG/NBD)"
MAX_HORIZON_DAYS = 3650.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="engage events JSONL(.gz), or a purchase table (CDNOW layout: "
                   "[id] customer YYYYMMDD quantity amount)")
    p.add_argument("--cutoff", required=True, metavar="T",
                   help="YYYY-MM-DD (the end of that UTC day) or an RFC 3339 time")
    p.add_argument("--horizon", required=True, type=float, metavar="D",
                   help="days after the cut-off in which a return means 'not churned'; "
                   "sets churn.horizon_days for the replay")
    p.add_argument("--config", default=None, help="rules file (default: built-in defaults)")
    p.add_argument("--format", choices=("auto", "events", "purchases"), default="auto",
                   help="events (JSONL) or purchases (CDNOW layout); auto: by the first line")
    p.add_argument("--examples", metavar="OUT.jsonl", default=None,
                   help="also write the labelled observation points learned before the "
                   "cut-off (churn-example/v2 JSON lines)")
    p.add_argument("--partitions", type=positive_int, default=4,
                   help="place users on this many partitions, as the live input topic (4)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--no-progress", action="store_true")


def parse_cutoff(text: str) -> int:
    """The last millisecond that belongs to the history."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000
                       + MS_PER_DAY - 1)
        return parse_rfc3339_ms(text)
    except ValueError:
        raise UsageError(
            f"--cutoff {text!r} is neither a date YYYY-MM-DD nor RFC 3339 with an offset"
        ) from None


def input_format(path: str) -> str:
    from streams.replay import open_lines

    with open_lines(path) as fh:
        for line in fh:
            if line.strip():
                return "events" if line.lstrip().startswith(b"{") else "purchases"
    raise UsageError(f"{path} is empty")


def _purchases_as_events(path: str, config: EngageConfig, workdir: Path
                         ) -> tuple[Path, EngageConfig]:
    """The table as a JSONL event file; the event-time floor lowered to its first day when
    the rules' floor (events.min_timestamp) would refuse it (historical data sets)."""
    if "purchase" not in config.event_types:
        raise UsageError("a purchase table needs a `purchase` event type in the rules file")
    try:
        purchases = read_purchases(path)
    except (PurchaseFileError, UnicodeDecodeError) as exc:
        raise UsageError(f"not a purchase table: {exc}") from None
    if not purchases:
        raise UsageError(f"{path}: no purchase rows")
    events = workdir / "events.jsonl"
    with open(events, "w") as out:
        for event in purchase_events(purchases):
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
    first = min(p.day for p in purchases)
    floor = datetime(first.year, first.month, first.day, tzinfo=UTC)
    if floor < config.events.min_timestamp:
        config = msgspec.structs.replace(
            config, events=msgspec.structs.replace(config.events, min_timestamp=floor)
        )
    return events, config


class Outcomes:
    """Who returned in (cut-off, cut-off + horizon], and the newest event seen."""

    def __init__(self, as_of_ms: int, horizon_ms: int, return_types: tuple[str, ...]) -> None:
        self.as_of_ms, self.end_ms = as_of_ms, as_of_ms + horizon_ms
        self.returns = frozenset(return_types) if return_types else None
        self.returned: set[str] = set()
        self.last_ms = as_of_ms

    def __call__(self, event: Event) -> None:
        if event.ts_ms > self.last_ms:
            self.last_ms = event.ts_ms
        if event.ts_ms <= self.end_ms and (self.returns is None or event.type in self.returns):
            self.returned.add(event.user_id)

    def complete(self) -> bool:
        """The file reaches the horizon's last day (as far as a daily history can)."""
        return self.last_ms // MS_PER_DAY >= self.end_ms // MS_PER_DAY


def _example_writer(out: IO[bytes]) -> Callable[[ChurnExample], None]:
    encode = msgspec.json.encode

    def write(example: ChurnExample) -> None:
        out.write(encode(example) + b"\n")

    return write


def backtest(path: str, config: EngageConfig, as_of_ms: int, *, partitions: int = 4,
             progress: bool = False, examples_out: IO[bytes] | None = None) -> dict[str, Any]:
    """Replay, predict at the cut-off, label from what follows, compare (see the module)."""
    # the cyclic collector stays off after the replay too: every user's state is still alive
    # while the population is predicted and compared, and a full collection walks them all
    # (a quarter of the comparison's CPU time on CDNOW_master)
    with no_cyclic_gc():
        return _backtest(path, config, as_of_ms, partitions, progress, examples_out)


def _backtest(path: str, config: EngageConfig, as_of_ms: int, partitions: int,
              progress: bool, examples_out: IO[bytes] | None) -> dict[str, Any]:
    # river, scipy: imported when the command runs, not whenever the CLI's parser is built
    from scoring.churn.backtest import Scored, churn_labels, compare
    from streams.replay import run_replay

    horizon_days = config.churn.horizon_days
    outcomes = Outcomes(as_of_ms, round(horizon_days * MS_PER_DAY), config.churn.return_types)
    replay = run_replay(
        path, config, as_of=as_of_ms, progress=progress, partitions=partitions, triggers=False,
        refresh=False, after_as_of=outcomes, validate=False,  # measured here, at the cut-off
        on_example=_example_writer(examples_out) if examples_out is not None else None,
    )
    loop = replay.churn
    assert loop is not None
    if not outcomes.complete():
        raise UsageError(
            f"the history ends at {format_rfc3339_ms(outcomes.last_ms)}, before the cut-off "
            f"+ {horizon_days:g} days ({format_rfc3339_ms(outcomes.end_ms)}): labels would be "
            "incomplete; choose an earlier --cutoff or a shorter --horizon"
        )
    loop.trainer.refit(as_of_ms)  # the parameters of the day, as a refit at the cut-off
    loop.publish()
    rows = []
    for user, state in sorted(replay.states.items()):
        cs = state.churn
        p = loop.labels.predict(cs, as_of_ms)
        if p is None:
            continue  # not in the population (no return yet, or beyond population_days)
        silence = (as_of_ms - cs.last_ms) / MS_PER_DAY
        rows.append(Scored(user, p, silence, summary_at(cs, as_of_ms)))
    if not rows:
        dead = replay.summary["dead_letters"]
        raise UsageError(
            "nobody is in the churn population at the cut-off"
            + (f" (refused events: {dead}; older than events.min_timestamp?)" if dead else "")
        )
    labels = churn_labels([r.user for r in rows], outcomes.returned)
    try:
        result = compare(rows, labels, horizon_days, "engage")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {
        "cutoff": format_rfc3339_ms(as_of_ms),
        "horizon_days": horizon_days,
        "model": loop.predictor.tag(),
        "examples_learned": sum(loop.trainer.labels.values()),
        "events_replayed": replay.summary["events_scored"],
        "dead_letters": replay.summary["dead_letters"],
        "seconds": replay.summary["seconds"],
        **result,
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def print_result(result: dict[str, Any]) -> None:
    print(
        f"cut-off {result['cutoff']}, horizon {result['horizon_days']:g} d: "
        f"{result['users']} users in the population, {result['churned']} churned "
        f"({result['churn_rate']:.1%}); model {result['model']}, "
        f"{result['examples_learned']} examples learned"
    )
    rows = [
        [name, _fmt(m["roc_auc"]), _fmt(m["pr_auc"]), _fmt(m.get("brier")), _fmt(m.get("ece")),
         _fmt(m["capture10"]), _fmt(m["lift10"], 2), _fmt(m["capture20"]),
         _fmt(m["lift20"], 2)]
        for name, m in result["scorers"].items()
    ]
    print(render_table(["scorer", "ROC AUC", "PR AUC", "Brier", "ECE", "capture@10%",
                        "lift@10%", "capture@20%", "lift@20%"], rows, "l" + "r" * 8))
    if result["bgnbd_params"] is None:
        print("BG/NBD: not fitted (fewer than 30 repeat customers in the population)")
    for name, d in result.get("paired", {}).items():
        print(f"ROC AUC of the model minus {name}: {d['delta']:+.4f} "
              f"(95 % CI {d['low']:+.4f} .. {d['high']:+.4f}, DeLong, p = {d['p_value']:.3f})")
    for name, m in result["scorers"].items():
        if "calibration" in m:
            print(f"\ncalibration of {name} by decile (predicted vs observed churn rate)")
            print(render_table(
                ["decile", "users", "predicted", "observed"],
                [[str(i + 1), str(b["count"]), _fmt(b["mean_predicted"]),
                  _fmt(b["observed_rate"])] for i, b in enumerate(m["calibration"])],
                "rrrr",
            ))


def run(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    require_file(args.input, "input")
    as_of_ms = parse_cutoff(args.cutoff)
    if not 0 < args.horizon <= MAX_HORIZON_DAYS:
        raise UsageError(f"--horizon must be more than 0 and at most {MAX_HORIZON_DAYS:g} days")
    if args.examples and not args.examples.endswith(".jsonl"):
        raise UsageError("--examples writes JSON lines: give a file name ending in .jsonl")
    config = msgspec.structs.replace(
        config, churn=msgspec.structs.replace(config.churn, horizon_days=float(args.horizon))
    )
    fmt = input_format(args.input) if args.format == "auto" else args.format
    with tempfile.TemporaryDirectory(prefix="engage-backtest-") as tmp:
        path = args.input
        if fmt == "purchases":
            events, config = _purchases_as_events(args.input, config, Path(tmp))
            path = str(events)
        examples = open(args.examples, "wb") if args.examples else None  # noqa: SIM115
        try:
            result = backtest(path, config, as_of_ms, partitions=args.partitions,
                              progress=not args.no_progress, examples_out=examples)
        finally:
            if examples is not None:
                examples.close()
    result["input"] = args.input
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print_result(result)
    return 0
