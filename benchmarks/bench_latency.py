"""Trigger latency through the real broker: from an event's produce time to its trigger.

For each layout (input partitions x workers) on fresh topics:

1. warm up: probes until every one has come back as a trigger (the group has settled);
2. maximum rate: a backlog of `--backlog` events, consumed as fast as the workers can
   (engage_events_consumed_total, summed over the workers, first to last increase);
3. latency at half that rate (`--fractions`: other shares too, one after the other) for
   `--seconds` each: background events (known users viewing) plus ten probes a second. A
   probe is a new user's first post, which earns the `first_post` milestone at once; its
   latency is the time from just before `producer.send` to the trigger's arrival on
   `triggers.milestone` (a consumer polling with a 10 ms fetch wait).

Every event carries the wall-clock time it is sent as its event time. Prints one JSON object
per layout and a table of the medians.

    python -m benchmarks.bench_latency [--layouts 1x1,2x1,4x1,4x2] [--seconds 20]
        [--backlog 20000] [--fractions 0.5,0.25] [--broker HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from benchmarks.common import (
    benchmark_broker,
    consumed_events,
    scoring_rate,
    start_worker,
    stop_worker,
)
from streams.topics import TopicNames, ensure_topics
from tests.integration.worker_process import free_port

ROOT = Path(__file__).resolve().parents[1]
PROBES_PER_S = 10


def event(user: str, type_: str) -> bytes:
    return json.dumps({"event_id": uuid.uuid4().hex, "user_id": user, "type": type_,
                       "ts": int(time.time() * 1000)}).encode()


class TriggerClock:
    """Arrival times of `first_post` milestones, by user, read as they land."""

    def __init__(self, broker: str, topic: str) -> None:
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            topic, bootstrap_servers=broker, group_id=None, auto_offset_reset="earliest",
            enable_auto_commit=False, fetch_max_wait_ms=10,
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=50).values():
                now = time.time()
                for record in records:
                    trigger = json.loads(record.value)
                    if trigger.get("reason", {}).get("rule") == "milestone.first_post":
                        self.arrived.setdefault(trigger["user_id"], now)

    def wait_for(self, users: list[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(u in self.arrived for u in users):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def max_rate(producer: KafkaProducer, topic: str, ports: list[int], backlog: int) -> float:
    """Events per second the workers score while draining a backlog."""
    before = consumed_events(ports)
    for i in range(backlog):
        user = f"b{i % 2000:06d}"
        producer.send(topic, key=user.encode(), value=event(user, "view"))
    producer.flush()
    return scoring_rate(ports, backlog, before=before, timeout_s=600)


def paced_latencies(producer: KafkaProducer, topic: str, clock: TriggerClock, rate: float,
                    seconds: float) -> tuple[list[float], float]:
    """Send `rate` events a second for `seconds` (probes included); probe latencies in ms."""
    sent_at: dict[str, float] = {}
    tick = 0.01
    per_tick = max(1.0, rate * tick)
    start = time.monotonic()
    owed = 0.0
    n = 0
    next_probe = start
    while (now := time.monotonic()) < start + seconds:
        owed += per_tick
        while owed >= 1:
            owed -= 1
            if now >= next_probe:
                user = f"p{uuid.uuid4().hex[:10]}"
                sent_at[user] = time.time()
                producer.send(topic, key=user.encode(), value=event(user, "post"))
                next_probe += 1 / PROBES_PER_S
            else:
                user = f"b{n % 2000:06d}"
                producer.send(topic, key=user.encode(), value=event(user, "view"))
            n += 1
        producer.flush()
        time.sleep(max(0.0, start + (n / rate) - time.monotonic()))
    achieved = n / (time.monotonic() - start)
    clock.wait_for(list(sent_at), timeout_s=60)
    return [(clock.arrived[u] - t) * 1000 for u, t in sent_at.items() if u in clock.arrived], (
        achieved)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_layout(broker: str, partitions: int, workers: int, seconds: float,
               backlog: int, fractions: list[float]) -> list[dict[str, Any]]:
    names = TopicNames(prefix=f"lat{uuid.uuid4().hex[:6]}.")
    ensure_topics(broker, names, partitions)
    producer = KafkaProducer(bootstrap_servers=broker, linger_ms=2, acks=1)
    clock = TriggerClock(broker, names.trigger("milestone"))
    with tempfile.TemporaryDirectory() as data:
        app = f"lat-{uuid.uuid4().hex[:6]}"
        ports = [free_port() for _ in range(workers)]
        procs = [start_worker(broker, names.prefix, app, partitions, port, f"{data}/{i}")
                 for i, port in enumerate(ports)]
        try:
            warm = []
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:  # until the group has settled and answers
                user = f"w{uuid.uuid4().hex[:10]}"
                producer.send(names.interactions, key=user.encode(), value=event(user, "post"))
                producer.flush()
                warm.append(user)
                if clock.wait_for(warm[-1:], timeout_s=2) and len(warm) >= 5 and all(
                        u in clock.arrived for u in warm[-5:]):
                    break
            time.sleep(5)  # let a late rebalance (second worker joining) pass
            top = max_rate(producer, names.interactions, ports, backlog)
            paced = [(fraction, *paced_latencies(
                producer, names.interactions, clock, top * fraction, seconds))
                for fraction in fractions]
        finally:
            for proc in procs:
                stop_worker(proc)
            clock.close()
            producer.close()
    return [{
        "partitions": partitions, "workers": workers, "fraction_of_max": fraction,
        "max_events_per_s": round(top), "paced_events_per_s": round(achieved),
        "probes": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
    } for fraction, latencies, achieved in paced]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="1x1,2x1,4x1,4x2",
                        help="PARTITIONSxWORKERS, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--broker", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--fractions", default="0.5",
                        help="paced rates as fractions of the measured maximum, comma-separated "
                        "(each paced for --seconds, one after the other)")
    args = parser.parse_args()
    fractions = [float(x) for x in args.fractions.split(",")]
    broker = benchmark_broker(args.broker)
    rows = []
    for layout in args.layouts.split(","):
        partitions, workers = (int(x) for x in layout.split("x"))
        for row in run_layout(broker, partitions, workers, args.seconds, args.backlog,
                              fractions):
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| partitions | workers | max events/s | fraction | paced events/s | probes "
          "| p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['partitions']} | {r['workers']} | {r['max_events_per_s']} | "
              f"{r['fraction_of_max']} | {r['paced_events_per_s']} | {r['probes']} | "
              f"{r['p50_ms']} | {r['p99_ms']} |")


if __name__ == "__main__":
    main()
