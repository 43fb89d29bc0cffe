"""Webhook throughput against a local endpoint that takes 50 ms per request, old sink vs new.

The baseline is the sink as it was before the rewrite (urllib, a new connection per POST, one
delivery at a time), run in a subprocess from the tree at `--baseline-rev`, extracted to a
temporary folder; the current sink is `sinks.webhook_consumer` (httpx on a shared pool,
`--concurrency` deliveries per partition). Each run consumes its own topic of triggers through
the real broker with its own consumer group, to the last offset. The endpoint runs in its own
process; the rate counts requests between the first and the last one it received. Medians per
side and their ratio are printed.

    python -m benchmarks.bench_webhook [--triggers 3000] [--baseline-triggers 300]
        [--partitions 4] [--concurrency 8] [--latency-ms 50] [--runs 2] [--broker HOST:PORT]
        [--baseline-rev REV]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from benchmarks.common import benchmark_broker, median
from sinks.webhook_consumer import WebhookSettings, run_webhook_sink
from tests.integration.worker_process import produce
from tests.webhook_receiver import Reply, serve

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "76cbbba"  # main before the rewrite: sinks/webhook.py with urllib, one at a time
SECRET = b"bench-secret"


def baseline_tree(rev: str) -> Path:
    """The source tree at `rev`, extracted to a temporary folder (never committed)."""
    root = Path(tempfile.mkdtemp(prefix="bench-webhook-base-"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


# The old sink, run from its own tree: sinks.webhook.run_webhook_sink as it was at the baseline.
OLD_SINK = """
import sys
from sinks.webhook import run_webhook_sink
broker, url, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
run_webhook_sink(broker, url, b"bench-secret", ["milestone"], topic_prefix=prefix,
                 group_id=prefix + "old", stop_after=n, idle_timeout_s=120)
"""


def fresh_triggers(broker: str, n: int, partitions: int) -> str:
    """A new topic prefix whose `triggers.milestone` holds `n` treatment triggers."""
    prefix = f"benchwh{uuid.uuid4().hex[:6]}."
    admin = KafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(f"{prefix}triggers.milestone", partitions, 1),
                             NewTopic(f"{prefix}triggers.webhook.dlq", 1, 1)], timeout_ms=30_000)
    finally:
        admin.close()
    records = []
    for i in range(n):
        trigger: dict[str, Any] = {
            "trigger_id": f"{i:032x}", "type": "milestone", "user_id": f"u{i % 997}",
            "variant": "treatment", "expires_at": "2099-01-01T00:00:00.000Z",
            "reason": {"rule": "milestone.events_100", "features": {"events_total": 100}},
            "score": 50.0, "tier": "silver", "churn_probability": 0.1,
        }
        records.append((trigger["user_id"].encode(), json.dumps(trigger).encode()))
    produce(broker, f"{prefix}triggers.milestone", records)
    return prefix


def _endpoint(conn: Connection, latency_s: float) -> None:
    """The endpoint, in its own process so that it does not share the sink's interpreter."""
    with serve(lambda _n, _req: Reply(200, delay_s=latency_s)) as endpoint:
        conn.send(endpoint.url)
        conn.recv()
    conn.send([(r.trigger_id, r.status, r.arrived_at) for r in endpoint.received])


def measured(run: Callable[[str], object], latency_s: float, n: int) -> float:
    """Deliveries per second seen by an endpoint answering 200 after `latency_s`."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_endpoint, args=(theirs, latency_s), daemon=True)
    process.start()
    try:
        run(ours.recv())
    finally:
        ours.send("done")
        received: list[tuple[str, int, float]] = ours.recv()
        process.join(timeout=30)
    delivered = {trigger_id for trigger_id, status, _at in received if status == 200}
    assert len(delivered) == n, f"{len(delivered)} of {n} triggers delivered"
    arrivals = [at for _id, _status, at in received]
    return (len(arrivals) - 1) / (max(arrivals) - min(arrivals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=3000, help="per run of the new sink")
    parser.add_argument("--baseline-triggers", type=int, default=300,
                        help="per run of the old sink (it does about 1/latency per second)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="new sink, per partition")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--broker", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args()
    broker = benchmark_broker(args.broker)
    base = baseline_tree(args.baseline_rev)
    latency_s = args.latency_ms / 1000

    def run_old(url: str) -> None:
        prefix = fresh_triggers(broker, args.baseline_triggers, args.partitions)
        subprocess.run(
            [sys.executable, "-c", OLD_SINK, broker, url, prefix, str(args.baseline_triggers)],
            cwd=base, env={**os.environ, "PYTHONPATH": str(base)}, check=True, timeout=900,
        )

    def run_new(url: str) -> None:
        prefix = fresh_triggers(broker, args.triggers, args.partitions)
        settings = WebhookSettings(url=url, secret=SECRET, broker=broker, types=("milestone",),
                                   topic_prefix=prefix, group_id=f"{prefix}new",
                                   concurrency=args.concurrency)
        asyncio.run(run_webhook_sink(settings, stop_after=args.triggers, idle_timeout_s=120))

    old_rates, new_rates = [], []
    started = time.monotonic()
    for _ in range(args.runs):
        old_rates.append(measured(run_old, latency_s, args.baseline_triggers))
        new_rates.append(measured(run_new, latency_s, args.triggers))
    print(json.dumps({
        "endpoint_latency_ms": args.latency_ms, "partitions": args.partitions,
        "runs": args.runs, "baseline_rev": args.baseline_rev,
        "old_triggers_per_run": args.baseline_triggers, "new_triggers_per_run": args.triggers,
        "new_concurrency_per_partition": args.concurrency,
        "old_deliveries_per_s": round(median(old_rates), 1),
        "new_deliveries_per_s": round(median(new_rates), 1),
        "new_to_old_ratio": round(median(new_rates) / median(old_rates), 1),
        "old_runs": [round(x, 1) for x in old_rates], "new_runs": [round(x, 1) for x in new_rates],
        "seconds": round(time.monotonic() - started),
    }, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
