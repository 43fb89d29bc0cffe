"""`engage simulate`: synthetic interaction traffic to a JSONL(.gz) file or a Kafka topic."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scoring.timeutil import format_rfc3339_ms, parse_rfc3339_ms
from simulator.personas import PERSONAS
from simulator.population import Truth
from simulator.traffic import DEFAULT_START_MS, Event, simulate
from simulator.writer import FileSink, KafkaSink, Sink, encode_event, write_truth

DEFAULT_BROKER = "127.0.0.1:9092"
DEFAULT_TOPIC_TRUTH = "var/simulate.truth.jsonl"
_REQUIRED = ("event_id", "user_id", "type", "ts")


class UsageError(Exception):
    """The command was called wrongly (reported as one line on stderr, exit status 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `engage simulate` (also used by `python -m simulator.cli`)."""
    size = parser.add_argument_group("population")
    size.add_argument("--users", type=int, default=1000, help="number of users (default 1000)")
    size.add_argument("--days", type=float, default=60.0,
                      help="simulated period in days (default 60)")
    size.add_argument("--start", default=format_rfc3339_ms(DEFAULT_START_MS),
                      help="period start, RFC 3339 (default 2026-01-01T00:00:00Z)")
    size.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    size.add_argument("--mix", default=None, metavar="P=W,...",
                      help="persona mix, e.g. new=0.15,core=0.2,casual=0.35,lapsing=0.2,"
                           "returning=0.1")
    out = parser.add_argument_group("output (exactly one of --out / --topic)")
    out.add_argument("--out", default=None, metavar="FILE",
                     help="write events to FILE (.jsonl, or .jsonl.gz for gzip)")
    out.add_argument("--topic", default=None, metavar="TOPIC",
                     help="produce events to this Kafka topic instead")
    with contextlib.suppress(argparse.ArgumentError):  # the caller may define --broker
        out.add_argument("--broker", default=None,
                         help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or "
                              f"{DEFAULT_BROKER})")
    out.add_argument("--truth", default=None, metavar="FILE",
                     help="ground truth JSONL (default: <stem>.truth.jsonl beside --out; "
                          f"{DEFAULT_TOPIC_TRUTH} with --topic)")
    out.add_argument("--max-events", type=int, default=None, metavar="N",
                     help="stop after N events")
    out.add_argument("--invalid-share", type=float, default=0.0, metavar="F",
                     help="add this fraction of deliberately malformed messages "
                          "(bad JSON, missing field, unknown type) for dead-letter demos")
    pace = parser.add_argument_group("pacing")
    pace.add_argument("--live", action="store_true",
                      help="pace output to event time instead of writing as fast as possible")
    pace.add_argument("--speed", type=float, default=3600.0,
                      help="with --live: simulated seconds per wall second (default 3600)")
    parser.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                        help="no progress bar")


def _parse_mix(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or name not in PERSONAS:
            raise UsageError(f"--mix: expected persona=weight with persona in "
                             f"{', '.join(PERSONAS)}, got {part!r}")
        try:
            mix[name] = float(weight)
        except ValueError:
            raise UsageError(f"--mix: weight {weight!r} is not a number") from None
    if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise UsageError("--mix: weights must be >= 0 and not all 0")
    return mix


def default_truth_path(out: str) -> str:
    """`var/events.jsonl.gz` -> `var/events.truth.jsonl`."""
    path = Path(out)
    name = path.name
    for suffix in (".jsonl.gz", ".json.gz", ".gz", ".jsonl", ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return str(path.with_name(f"{name}.truth.jsonl"))


def _check(args: argparse.Namespace) -> None:
    out, topic = getattr(args, "out", None), getattr(args, "topic", None)
    if bool(out) == bool(topic):
        raise UsageError("exactly one of --out FILE or --topic TOPIC is required "
                         "(e.g. --out var/events.jsonl.gz, or --topic interactions)")
    if args.users < 1:
        raise UsageError(f"--users must be at least 1, got {args.users}")
    if not args.days > 0:
        raise UsageError(f"--days must be > 0, got {args.days}")
    if not 0.0 <= args.invalid_share < 1.0:
        raise UsageError(f"--invalid-share must be in [0, 1), got {args.invalid_share}")
    if args.live and not args.speed > 0:
        raise UsageError(f"--speed must be > 0, got {args.speed}")
    if args.max_events is not None and args.max_events < 0:
        raise UsageError(f"--max-events must be >= 0, got {args.max_events}")


def make_invalid(rng: random.Random, event: Event, n: int) -> tuple[bytes | None, bytes]:
    """A deliberately malformed message derived from a valid event."""
    key = str(event["user_id"]).encode()
    kind = rng.choice(("bad_json", "missing_field", "unknown_type", "bad_ts"))
    bad: dict[str, Any] = dict(event)
    bad["event_id"] = f"{event['event_id']}-invalid{n}"
    if kind == "bad_json":
        raw = encode_event(bad)
        return key, raw[: max(1, len(raw) // 2)]
    if kind == "missing_field":
        del bad[rng.choice(_REQUIRED)]
    elif kind == "unknown_type":
        bad["type"] = rng.choice(("teleport", "hyperlike", "VIEW", ""))
    else:
        bad["ts"] = rng.choice(("yesterday", "2026-13-45T99:00:00Z", "1767225600"))
    return key, encode_event(bad)


def _open_sink(args: argparse.Namespace) -> Sink:
    if args.out:
        return FileSink(args.out)
    broker = getattr(args, "broker", None) or os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                             DEFAULT_BROKER)
    # producer_config: Kafka security settings the `engage` CLI resolved (SASL, TLS)
    return KafkaSink(args.topic, broker, **getattr(args, "producer_config", {}))


def run(args: argparse.Namespace) -> int:
    """Run `engage simulate` with parsed arguments; returns the exit status."""
    _check(args)  # UsageError: the caller prints usage and the message
    start_ms = _parse_start(args.start)
    mix = _parse_mix(getattr(args, "mix", None))
    truth_path = args.truth or (default_truth_path(args.out) if args.out else DEFAULT_TOPIC_TRUTH)

    sim = simulate(users=args.users, days=args.days, seed=args.seed, start_ms=start_ms, mix=mix)
    truths = sim.truths
    write_truth(truth_path, truths)

    total = sim.planned_events
    if args.max_events is not None:
        total = min(total, args.max_events)
    written, invalid = _pump(args, sim.timed_events(args.max_events), total)

    churned = sum(1 for t in truths if t.churned)
    where = args.out or f"topic {args.topic}"
    extra = f" (+{invalid:,} invalid)" if invalid else ""
    print(f"simulate: {written:,} events{extra} for {len(truths):,} users "
          f"({churned:,} churned) -> {where}; truth -> {truth_path}", flush=True)
    return 0


def _parse_start(text: str) -> int:
    try:
        return parse_rfc3339_ms(text)
    except ValueError as exc:
        raise UsageError(f"--start: {exc}") from None


def _pump(args: argparse.Namespace, stream: Any, total: int) -> tuple[int, int]:
    from tqdm import tqdm

    sink = _open_sink(args)
    rng = random.Random(f"engage-sim/{args.seed}/invalid")
    share = float(args.invalid_share)
    written = invalid = 0
    bar = tqdm(total=total, unit="ev", unit_scale=True, disable=bool(args.quiet),
               file=sys.stderr, desc="simulate", mininterval=0.5)
    pending = 0
    live = bool(args.live)
    speed = float(args.speed)
    t0_ms: int | None = None
    wall0 = 0.0
    try:
        for ts, event in stream:
            if live:
                if t0_ms is None:
                    t0_ms, wall0 = ts, time.monotonic()
                ahead = wall0 + (ts - t0_ms) / 1000.0 / speed - time.monotonic()
                if ahead > 0.002:
                    time.sleep(ahead)
            key = event["user_id"].encode()
            sink.write(key, encode_event(event))
            written += 1
            if share and rng.random() < share:
                bad_key, bad_value = make_invalid(rng, event, invalid)
                sink.write(bad_key, bad_value)
                invalid += 1
            pending += 1
            if pending >= 1000 or live:
                bar.update(pending)
                pending = 0
        bar.update(pending)
    finally:
        bar.close()
        sink.close()
    return written, invalid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engage simulate", description=__doc__)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UsageError as exc:
        parser.error(str(exc))


__all__ = ["Truth", "UsageError", "add_arguments", "default_truth_path", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
