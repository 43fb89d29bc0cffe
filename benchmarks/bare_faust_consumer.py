"""The baseline for bench_worker: a bare Faust agent that only consumes a topic.

Usage: python benchmarks/bare_faust_consumer.py BROKER TOPIC COUNT APP_ID
Prints one JSON line {"count", "first_s", "last_s", "first_count", "cpu_s"} when COUNT events
have been consumed, then exits: monotonic seconds at the first batch and at the last, the
events in the first batch, and the CPU seconds of the process (every thread) in between.
"""

from __future__ import annotations

import json
import os
import sys
import time

import faust

broker, topic_name, wanted, app_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
app = faust.App(
    app_id, broker=f"kafka://{broker}", store="memory://", web_enabled=False,
    consumer_auto_offset_reset="earliest", topic_replication_factor=1,
    datadir=f"/tmp/{app_id}",
)
topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw", internal=False)
seen = {"count": 0, "first_s": 0.0, "first_count": 0, "first_cpu": 0.0}


@app.agent(topic, concurrency=1)
async def consume(stream: faust.StreamT) -> None:
    async for _batch in stream.take(500, within=0.2):
        if seen["count"] == 0:
            seen["first_s"], seen["first_cpu"] = time.monotonic(), time.process_time()
            seen["first_count"] = len(_batch)
        seen["count"] += len(_batch)
        if seen["count"] >= wanted:
            print(json.dumps({"count": seen["count"], "first_s": seen["first_s"],
                              "last_s": time.monotonic(), "first_count": seen["first_count"],
                              "cpu_s": time.process_time() - seen["first_cpu"]}), flush=True)
            os._exit(0)


if __name__ == "__main__":
    from faust.worker import Worker

    worker = Worker(app, loglevel="error", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as engage's worker: no spinner setting the root logger to DEBUG
    worker.execute_from_commandline()
