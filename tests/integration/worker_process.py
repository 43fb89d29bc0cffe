"""Run the real worker as a child process against a real broker, and read its topics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.topics import TopicNames

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_names() -> TopicNames:
    return TopicNames(prefix=f"t{uuid.uuid4().hex[:8]}.")


@contextmanager
def running_worker(
    bootstrap: str,
    names: TopicNames,
    tmp_path: Path,
    *extra: str,
    config: Path | None = None,
    log_name: str = "worker.log",
) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [
        sys.executable, "-m", "streams.cli", "worker", "--broker", bootstrap,
        "--topic-prefix", names.prefix, "--app-id", f"{names.prefix}app",
        "--metrics-port", str(free_port()), "--web-port", str(free_port()),
        "--data-dir", str(tmp_path / "data"), "--partitions", "2",
        "--tick-seconds", "1", "--log-level", "warn", *extra,
    ]
    if config is not None:
        cmd += ["--config", str(config)]
    log = (tmp_path / log_name).open("ab")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        stop_worker(proc)
        log.close()


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush(30)
    producer.close()


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 90.0,
) -> list[dict[str, Any]]:
    """Every JSON record on `topic` from the start, read until `until(records)` or timeout."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    deadline = time.monotonic() + timeout_s
    records: list[dict[str, Any]] = []
    try:
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.5)
        tps = [TopicPartition(topic, p) for p in sorted(partitions or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while time.monotonic() < deadline:
            for message in consumer:
                records.append(json.loads(message.value))
            if until(records):
                break
    finally:
        consumer.close()
    return records
