"""The worker's scoring shell without a broker: CPU time per event, by batch size.

What `engage worker` does with each batch besides Kafka — decode, route, score, the growth
loop, sweeps, score records, triggers, population and leaderboard records — through
streams.processor.ScoringShell over an in-memory store, on the same simulated traffic as
`bench_worker` (users = events / 150, 30 days). CPU seconds of this process (not wall time),
so a busy machine slows it less than it does the broker benchmarks; the median of `--runs`.

    python -m benchmarks.bench_shell [--events 20000] [--batches 2000,200,50] [--runs 3]

Compare two source trees (e.g. before and after a change; `git worktree add /tmp/before REV`)
by running this file on each, alternately: `cd TREE && PYTHONPATH=TREE python
/path/to/benchmarks/bench_shell.py` imports the scoring code of TREE.
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import median
from scoring.config import load_config
from scoring.partitioning import partition_for_user
from scoring.timeutil import parse_rfc3339_ms
from simulator import generate
from sinks.metrics import Metrics
from streams.engine_factory import build_engine
from streams.processor import DictStore, InputRecord, ScoringShell
from streams.topics import TopicNames

PARTITIONS = 4


def records(n: int) -> list[InputRecord]:
    stream, _ = generate(users=max(100, n // 150), days=30, seed=4, max_events=n)
    names = TopicNames()
    offsets: dict[int, int] = {}
    out = []
    for e in stream:
        p = partition_for_user(e["user_id"], PARTITIONS)
        offsets[p] = offsets.get(p, -1) + 1
        out.append(InputRecord(names.interactions, p, offsets[p], e["user_id"].encode(),
                               json.dumps(e).encode()))
    return out


def cpu_seconds(batch: list[InputRecord], size: int, wall_ms: int) -> float:
    config = load_config()
    metrics = Metrics()
    engine = build_engine(config, churn=None, on_suppressed=metrics.count_suppressed)
    shell = ScoringShell(config, engine, DictStore(PARTITIONS), TopicNames(), PARTITIONS,
                         metrics, wall_clock_ms=lambda: wall_ms, idle_advance_ms=60_000)
    started = time.process_time()
    for i in range(0, len(batch), size):
        result = shell.handle_batch(batch[i:i + size])
        shell.store_batch(result)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batches", default="2000,200,50")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    batch = records(args.events)
    wall_ms = max(parse_rfc3339_ms(json.loads(r.value or b"{}")["ts"]) for r in batch) + 60_000
    report = {"events": len(batch), "partitions": PARTITIONS, "runs": args.runs}
    for size in (int(x) for x in args.batches.split(",")):
        runs = [cpu_seconds(batch, size, wall_ms) for _ in range(args.runs)]
        report[f"batch_{size}_cpu_us_per_event"] = round(1e6 * median(runs) / len(batch), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
