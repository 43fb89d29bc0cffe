"""Replay throughput and state size on about one million simulated events.

Prints, in one run: the engine alone over pre-decoded events (scoring alone), decode +
engine from the gzipped file, and the full replay (churn loop and triggers on), with the
median of several runs each, plus serialized bytes per user.

    python -m benchmarks.bench_replay [--users 3000] [--days 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import median, simulated_file
from scoring.alignment import AlignedFeed
from scoring.config import load_config
from scoring.driver import Driver
from scoring.engine import ScoringEngine
from scoring.events import Event, EventRules, decode_event
from scoring.partitioning import partition_for_user
from scoring.state import UserState
from scoring.state_codec import encode_state
from streams.replay import open_lines, run_replay

PARTITIONS = 4


def engine_alone(events: list[tuple[int, Event]]) -> tuple[float, dict[str, UserState]]:
    engine = ScoringEngine(load_config())
    states: dict[str, UserState] = {}
    driver = Driver(engine, states.get, PARTITIONS)
    feed = AlignedFeed(driver, states, lambda _e, _o: None, lambda _o: None)
    started = time.perf_counter()
    for p, event in events:
        feed.add(p, event)
    feed.finish()
    return time.perf_counter() - started, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    path, _ = simulated_file(args.users, args.days, seed=1)
    config = load_config()
    rules = EventRules.from_config(config)
    now = int(time.time() * 1000)
    with open_lines(path) as fh:
        events = [decode_event(line, now_ms=now, rules=rules) for line in fh]
    placed = [(partition_for_user(e.user_id, PARTITIONS), e) for e in events]
    n = len(events)
    alone, states = [], {}
    for _ in range(args.runs):
        seconds, states = engine_alone(placed)
        alone.append(n / seconds)
    decoded, full = [], []
    for _ in range(args.runs):
        r = run_replay(path, config, progress=False, churn=False, triggers=False)
        decoded.append(n / r.summary["seconds"])
    for _ in range(max(1, args.runs - 1)):
        r = run_replay(path, config, progress=False)
        full.append(n / r.summary["seconds"])
    sizes = sorted(len(encode_state(s)) for s in r.states.values())
    result = {
        "events": n,
        "users": len(states),
        "engine_alone_events_per_s": round(median(alone)),
        "decode_and_engine_events_per_s": round(median(decoded)),
        "full_replay_events_per_s": round(median(full)),
        "runs": args.runs,
        "state_bytes_per_user": {"median": sizes[len(sizes) // 2],
                                 "p95": sizes[int(len(sizes) * 0.95)], "max": sizes[-1]},
        "churn_progressive": r.summary.get("churn", {}).get("champion"),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
