"""CPU time per output record: the worker's record batches against one send per record.

A batch's outputs (score records, triggers, audit records, churn examples: about 0.3 per
input event on the simulated traffic of `bench_worker`) go through an aiokafka producer to a
real broker, each round awaited until acknowledged, as the worker's outbox does. Alternates the
two ways, `--rounds` times, and prints for each the median CPU µs per record of this process
(every thread) and the median wall time of a delivery: `per_record` is `producer.send` per
record (what the worker did before), `record_batches` is `streams.app.send_record_batches`
(one batch per topic partition).

    python -m benchmarks.bench_outputs [--records 600] [--repeat 20] [--rounds 8]
                                       [--broker HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from typing import Any

from benchmarks.common import benchmark_broker, median
from streams.app import send_record_batches
from streams.processor import OutRecord

TOPICS = ("scores", "audit", "examples")
VALUE_BYTES = 600  # about a score record


async def per_record(producer: Any, records: list[OutRecord]) -> None:
    futures = [await producer.send(r.topic, r.value, r.key, r.partition) for r in records]
    for future in futures:
        await future


async def record_batches(producer: Any, records: list[OutRecord]) -> None:
    for _records, future, error in await send_record_batches(producer, records):
        if error is not None:
            raise error
        await future


async def measure(broker: str, n: int, repeat: int, rounds: int) -> dict[str, object]:
    from aiokafka import AIOKafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    prefix = f"benchout{uuid.uuid4().hex[:6]}."
    topics = [prefix + name for name in TOPICS]
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(t, 4, 1) for t in topics])
    admin.close()
    # the worker's producer settings that matter here: no linger, 256 KB batches
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=0,
                                max_batch_size=256 * 1024)
    await producer.start()
    rng = random.Random(7)
    for topic in topics:  # wait for the new topics' leaders before measuring
        await per_record(producer, [OutRecord(topic, b"warm", b"x")])
    cpu: dict[str, list[float]] = {"per_record": [], "record_batches": []}
    wall: dict[str, list[float]] = {"per_record": [], "record_batches": []}
    try:
        for _ in range(rounds):
            for name, send in (("per_record", per_record), ("record_batches", record_batches)):
                records = [OutRecord(rng.choice(topics), f"u{rng.randrange(700)}".encode(),
                                     b"x" * VALUE_BYTES) for _ in range(n)]
                started, started_wall = time.process_time(), time.perf_counter()
                for _ in range(repeat):
                    await send(producer, records)
                cpu[name].append((time.process_time() - started) / (repeat * n))
                wall[name].append((time.perf_counter() - started_wall) / repeat)
    finally:
        await producer.stop()
    report: dict[str, object] = {"records_per_round": n * repeat, "rounds": rounds}
    for name, runs in cpu.items():
        report[f"{name}_cpu_us_per_record"] = round(1e6 * median(runs), 2)
        report[f"{name}_runs"] = [round(1e6 * x, 2) for x in runs]
        report[f"{name}_wall_ms_per_delivery"] = round(1e3 * median(wall[name]), 2)
    report["per_record_to_batches_ratio"] = round(
        median(cpu["per_record"]) / median(cpu["record_batches"]), 2)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600,
                        help="outputs per batch (a 2,000-event batch makes about 600)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--broker", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args()
    broker = benchmark_broker(args.broker)
    report = asyncio.run(measure(broker, args.records, args.repeat, args.rounds))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
