"""The worker's scoring shell without a broker: CPU time per event, by batch size.

What `engage worker` does with each batch besides Kafka — decode, route, score, the growth
loop, churn labels and features, sweeps, score records, triggers, population and leaderboard
records — through streams.processor.ScoringShell over an in-memory store, with the engine
built as the worker builds it (churn hooks on, no model yet), on the same simulated traffic
as `bench_worker` (users = events / 150, 30 days). CPU seconds of this process (not wall
time), so a busy machine slows it less than it does the broker benchmarks; the median of
`--runs`. `output_digest` hashes every output record and stored state of the first run:
two trees that print the same digest produced the same outputs (a speed-up that must not
change anything is checked with it).

    python -m benchmarks.bench_shell [--events 20000] [--batches 2000,200,50] [--runs 3]

Compare two source trees (e.g. before and after a change; `git worktree add /tmp/before REV`)
by running this file on each, alternately: `cd TREE && PYTHONPATH=TREE python
/path/to/benchmarks/bench_shell.py` imports the scoring code of TREE.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

from benchmarks.common import median
from scoring.churn.labels import ChurnLabels
from scoring.churn.trainer import Predictor
from scoring.config import load_config
from scoring.partitioning import partition_for_user
from scoring.state_codec import codec_for
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


def cpu_seconds(batch: list[InputRecord], size: int, wall_ms: int) -> tuple[float, str]:
    """CPU seconds to score `batch` in batches of `size`, and a digest of what came out."""
    config = load_config()
    metrics = Metrics()
    predictor = Predictor()
    churn = ChurnLabels(config, predictor.predict, predictor.tag, predictor.bgnbd)
    engine = build_engine(config, churn=churn, on_suppressed=metrics.count_suppressed)
    store = DictStore(PARTITIONS)
    shell = ScoringShell(config, engine, store, TopicNames(), PARTITIONS,
                         metrics, wall_clock_ms=lambda: wall_ms, idle_advance_ms=60_000)
    outputs = []
    started = time.process_time()
    for i in range(0, len(batch), size):
        result = shell.handle_batch(batch[i:i + size])
        shell.store_batch(result)
        outputs.append(result.outbox)
    cpu = time.process_time() - started
    digest = hashlib.sha256()
    for outbox in outputs:
        for r in outbox:
            digest.update(repr((r.topic, r.key, r.value, r.partition, r.headers)).encode())
    codec = codec_for(config)
    for user_id in sorted(store.states):
        digest.update(user_id.encode() + codec.encode(store.states[user_id]))
    for partition, state in sorted(store.partition_states.items()):
        digest.update(repr((partition, state)).encode())
    return cpu, digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batches", default="2000,200,50")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    batch = records(args.events)
    wall_ms = max(parse_rfc3339_ms(json.loads(r.value or b"{}")["ts"]) for r in batch) + 60_000
    report: dict[str, object] = {"events": len(batch), "partitions": PARTITIONS,
                                 "runs": args.runs}
    for size in (int(x) for x in args.batches.split(",")):
        runs = [cpu_seconds(batch, size, wall_ms) for _ in range(args.runs)]
        report[f"batch_{size}_cpu_us_per_event"] = round(
            1e6 * median([cpu for cpu, _ in runs]) / len(batch), 1)
        report[f"batch_{size}_output_digest"] = runs[0][1]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
