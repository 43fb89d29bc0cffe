"""Worker throughput through the real broker, against a bare Faust agent, in one run.

Produces N simulated events to a fresh input topic; then, for each run, a bare Faust agent
that only consumes that topic (benchmarks/bare_faust_consumer.py) and the real `engage
worker` (decode, score, state table with changelog, score records, triggers, churn examples)
each read it from the beginning with their own consumer group, each worker run on topics of
its own holding the same records (on shared topics a later run would also read every earlier
run's outputs: churn examples to learn, models, population snapshots). Rates count from
the first to the last event consumed; the median per side and their ratio are printed, and
so is each process's CPU time per event over the same span (a steadier figure than a rate on
a shared machine).

    python -m benchmarks.bench_worker [--events 100000] [--runs 2] [--broker HOST:PORT]
                                      [--baseline-root DIR] [--probe]

`--baseline-root` also runs the worker of another source tree (e.g. a checkout of the
previous release: `git worktree add /tmp/engage-base <rev>`) on the same topic, in the same
run, so a change's cost is a ratio measured side by side. `--probe` times the worker's
`/healthz/` answers while it drains the backlog (the event loop's longest stalls).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from benchmarks.common import (
    benchmark_broker,
    median,
    scoring_rate,
    start_worker,
    stop_worker,
)
from simulator import generate
from streams.topics import TopicNames, ensure_topics
from tests.integration.worker_process import free_port, produce

ROOT = Path(__file__).resolve().parents[1]


def fresh_topics(broker: str, records: list[tuple[bytes, bytes]], partitions: int) -> TopicNames:
    """Every topic of the worker created anew under a fresh prefix, `records` on its input."""
    names = TopicNames(prefix=f"bench{uuid.uuid4().hex[:6]}.")
    ensure_topics(broker, names, partitions)
    produce(broker, names.interactions, records)
    return names


def bare_run(broker: str, topic: str, n: int) -> tuple[float, float]:
    """The bare agent's events per second and CPU seconds per event."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bare_faust_consumer.py"), broker, topic,
         str(n), f"bare-{uuid.uuid4().hex[:6]}"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    line = [ln for ln in out.stdout.splitlines() if '{"count"' in ln][-1]
    r = json.loads(line[line.index('{"count"') :])  # after any terminal control codes
    return (float(r["count"] / (r["last_s"] - r["first_s"])),
            r["cpu_s"] / (r["count"] - r["first_count"]))


def batch_phases(port: int) -> dict[str, float]:
    """Seconds the worker's batches spent per phase (engage_batch_phase_seconds), summed;
    empty for a worker that does not export it (an older release)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    phases: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("engage_batch_phase_seconds_sum{"):
            phase = line.split('phase="', 1)[1].split('"', 1)[0]
            phases[phase] = float(line.rsplit(" ", 1)[1])
    return phases


class ProbeTimer:
    """Polls the worker's `/healthz/` every 0.1 s from a thread, as a kubelet would (more
    often): how long each answer took while the worker drains the backlog."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/healthz/"
        self.seconds: list[float] = []
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while self.running:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    r.read()
                if self.running:
                    self.seconds.append(time.monotonic() - started)
            except OSError:  # not up yet
                pass
            time.sleep(0.1)

    def stop(self) -> dict[str, float]:
        self.running = False
        self.thread.join(timeout=15)
        got = sorted(self.seconds)
        if not got:
            return {}
        return {"probes": len(got), "p50_ms": round(1000 * got[len(got) // 2], 1),
                "p99_ms": round(1000 * got[min(len(got) - 1, int(len(got) * 0.99))], 1),
                "max_ms": round(1000 * got[-1], 1)}


def worker_run(
    broker: str, names: TopicNames, n: int, partitions: int, root: Path = ROOT,
    phases: list[dict[str, float]] | None = None,
    probes: list[dict[str, float]] | None = None,
) -> tuple[float, float | None]:
    """The worker's events per second and CPU seconds per event (None: not exported)."""
    metrics_port, web_port = free_port(), free_port()
    app = f"bench-{uuid.uuid4().hex[:6]}"
    # the key only matters to the churn topology; the bench measures scoring throughput
    env = {**os.environ, "ENGAGE_MODEL_SIGNING_KEY": "bench-signing-key",
           "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory() as data:
        proc = start_worker(broker, names.prefix, app, partitions, metrics_port, data,
                            root=root, env=env, web_port=web_port)
        probe = ProbeTimer(web_port) if probes is not None else None
        try:
            cpu: list[float] = []
            # polled once a second: a scrape renders every metric (~3.5 ms of the worker's
            # CPU), 0.4 % of its time, half of what polls twice a second cost
            rate = scoring_rate([metrics_port], n, cpu_per_event=cpu, poll_s=1.0)
            if phases is not None:
                phases.append(batch_phases(metrics_port))
            return rate, (cpu[0] if cpu else None)
        finally:
            if probe is not None and probes is not None:
                probes.append(probe.stop())
            stop_worker(proc)


def cpu_report(name: str, runs: list[tuple[float, float | None]]) -> dict[str, object]:
    """{name_cpu_us_per_event: median, name_cpu_runs: [...]} of (rate, CPU) runs, or {} when
    not measured (a worker that exports no process_cpu_seconds_total)."""
    per_event = [cpu for _, cpu in runs if cpu is not None]
    if not per_event:
        return {}
    return {f"{name}_cpu_us_per_event": round(1e6 * median(per_event), 1),
            f"{name}_cpu_runs": [round(1e6 * x, 1) for x in per_event]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--broker", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--baseline-root", type=Path, default=None,
                        help="also run the worker of this source tree (e.g. the last release)")
    parser.add_argument("--probe", action="store_true",
                        help="poll each worker's /healthz/ every 0.1 s meanwhile and print "
                        "how long the answers took")
    args = parser.parse_args()
    broker = benchmark_broker(args.broker)
    stream, _ = generate(users=max(100, args.events // 150), days=30, seed=4,
                         max_events=args.events)
    records = [(e["user_id"].encode(), json.dumps(e).encode()) for e in stream]
    names = fresh_topics(broker, records, args.partitions)
    n = len(records)
    # (events/s, CPU seconds per event) of each run
    bare_runs: list[tuple[float, float | None]] = []
    worker_runs: list[tuple[float, float | None]] = []
    baseline_runs: list[tuple[float, float | None]] = []
    phases: list[dict[str, float]] = []
    probes: list[dict[str, float]] | None = [] if args.probe else None
    for _ in range(args.runs):
        bare_runs.append(bare_run(broker, names.interactions, n))
        # each worker run on topics of its own: on shared ones a later run also reads what
        # the earlier ones wrote (their churn examples, models, population snapshots and
        # leaderboards), from the start, and would measure more work than the first
        worker_runs.append(worker_run(broker, fresh_topics(broker, records, args.partitions),
                                      n, args.partitions, phases=phases, probes=probes))
        if args.baseline_root is not None:
            baseline_runs.append(worker_run(
                broker, fresh_topics(broker, records, args.partitions), n, args.partitions,
                args.baseline_root.resolve()))
    bare, worker, baseline = ([rate for rate, _ in runs]
                              for runs in (bare_runs, worker_runs, baseline_runs))
    report = {
        "events": n, "runs": args.runs, "partitions": args.partitions,
        "bare_faust_events_per_s": round(median(bare)),
        "worker_events_per_s": round(median(worker)),
        "worker_to_bare_ratio": round(median(worker) / median(bare), 3),
        "bare_runs": [round(x) for x in bare], "worker_runs": [round(x) for x in worker],
        # CPU µs per event of each process (every thread), from the first to the last event:
        # what the consumers cost, which neighbours on a shared machine disturb far less
        # than the rates; bare / worker is the share of a bare agent's efficiency
        **cpu_report("bare", bare_runs), **cpu_report("worker", worker_runs),
        # seconds per batch phase, summed over the run: score and waiting are the score
        # loop's own time (waiting: for a batch in flight to be stored); outputs and
        # changelog are deliveries, which overlap the next batch's scoring
        **({"worker_healthz_answer": probes} if probes is not None else {}),
        "worker_batch_phase_seconds": [
            {k: round(v, 2) for k, v in sorted(p.items())} for p in phases
        ],
    }
    if baseline:
        report.update({
            "baseline_root": str(args.baseline_root),
            "baseline_events_per_s": round(median(baseline)),
            "baseline_to_bare_ratio": round(median(baseline) / median(bare), 3),
            "baseline_runs": [round(x) for x in baseline],
            **cpu_report("baseline", baseline_runs),
        })
    if "worker_cpu_us_per_event" in report:  # bare / worker: the share of bare's efficiency
        report["worker_to_bare_cpu_ratio"] = round(
            float(report["bare_cpu_us_per_event"]) / float(report["worker_cpu_us_per_event"]), 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
