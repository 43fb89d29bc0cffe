"""Run the real worker as a child process against a real broker, and read its topics."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.topics import TopicNames

ROOT = Path(__file__).resolve().parents[2]
# Workers under test sign and verify model artifacts with this key, not the public dev key.
TEST_SIGNING_KEY = "integration-test-signing-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_names() -> TopicNames:
    return TopicNames(prefix=f"t{uuid.uuid4().hex[:8]}.")


@dataclass
class WorkerHandle:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    web_port: int
    host: str = "127.0.0.1"  # the worker's --bind-address

    def get_json(self, path: str, timeout_s: float = 30.0) -> Any:
        """GET from the worker's web server, retrying while it starts."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://{self.host}:{self.web_port}{path}", timeout=5
                ) as r:
                    return json.loads(r.read())
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def poll_json(self, path: str) -> tuple[int, Any]:
        """(HTTP status, JSON body or None) from the worker's web server; (0, None) when it
        does not answer. Never raises: for waiting loops."""
        try:
            with urllib.request.urlopen(
                f"http://{self.host}:{self.web_port}{path}", timeout=10
            ) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def wait_json(
        self, path: str, accept: Callable[[int, Any], bool], timeout_s: float = 120.0
    ) -> Any:
        """Poll `path` until `accept(status, body)`; the last answer is in the failure."""
        deadline = time.monotonic() + timeout_s
        status, body = self.poll_json(path)
        while not accept(status, body):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"GET {path}: last answer {status} {body!r}")
            time.sleep(0.5)
            status, body = self.poll_json(path)
        return body

    def metrics(self, timeout_s: float = 30.0) -> str:
        """The worker's /metrics text, retrying while it starts."""
        url = f"http://{self.host}:{self.metrics_port}/metrics"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return str(r.read().decode())
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.5)


@contextmanager
def running_worker(
    bootstrap: str,
    names: TopicNames,
    tmp_path: Path,
    *extra: str,
    config: Path | None = None,
    log_name: str = "worker.log",
    bind: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    partitions: int = 2,
    log_level: str = "warn",
    module: str = "streams.cli",
) -> Iterator[WorkerHandle]:
    """`engage worker` as a child process (`module`: another entry point that takes the same
    arguments, such as a chaos scenario's faulty worker)."""
    handle_ports = (free_port(), free_port())
    cmd = [
        sys.executable,
        "-m",
        module,
        "worker",
        "--broker",
        bootstrap,
        "--topic-prefix",
        names.prefix,
        "--app-id",
        f"{names.prefix}app",
        "--metrics-port",
        str(handle_ports[0]),
        "--web-port",
        str(handle_ports[1]),
        "--data-dir",
        str(tmp_path / "data"),
        "--partitions",
        str(partitions),
        "--tick-seconds",
        "1",
        "--log-level",
        log_level,
        "--bind-address",
        bind,
        *extra,
    ]
    if config is not None:
        cmd += ["--config", str(config)]
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = (tmp_path / log_name).open("ab")
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ, "PYTHONUNBUFFERED": "1", "ENGAGE_MODEL_SIGNING_KEY": TEST_SIGNING_KEY,
            **(env or {}),
        },
    )
    try:
        yield WorkerHandle(proc, handle_ports[0], handle_ports[1], host=bind)
    finally:
        stop_worker(proc)
        log.close()


@contextmanager
def webhook_receiver() -> Iterator[str]:
    """An HTTP endpoint on loopback: 200 for every trigger except `t-fail`, which gets 500."""

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            failing = self.headers.get("X-Engage-Trigger-Id") == "t-fail"
            self.send_response(500 if failing else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/engage"
    finally:
        server.shutdown()
        server.server_close()


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
    while_growing_s: float = 0.0,
    partition_field: str | None = None,
) -> list[dict[str, Any]]:
    """Every JSON record on `topic` from the start, read until `until(records)` or timeout
    (each partition's in offset order; `partition_field`: the field each record gets with
    the partition it was read from). With `while_growing_s`, the timeout counts from the
    last new record instead (up to that much longer in all): a worker that is slow on a
    loaded machine but still producing is waited for, one that stopped is not."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
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
        start = time.monotonic()
        while time.monotonic() < deadline:
            before = len(records)
            for message in consumer:
                record = json.loads(message.value)
                if partition_field is not None:
                    record[partition_field] = message.partition
                records.append(record)
            if until(records):
                break
            if len(records) > before and while_growing_s:
                now = time.monotonic()
                deadline = min(max(deadline, now + timeout_s), start + timeout_s + while_growing_s)
    finally:
        consumer.close()
    return records


def simulated_records(
    users: int, days: float, seed: int
) -> tuple[list[tuple[bytes | None, bytes]], dict[str, int]]:
    """Simulated events keyed by user, ready to produce, and how many each user has."""
    from simulator import generate

    stream, _ = generate(users=users, days=days, seed=seed)
    events = list(stream)
    return keyed(events), dict(Counter(e["user_id"] for e in events))


@dataclass
class ReplayedHistory:
    """Simulated events, the rules file they were replayed with, and what `engage replay`
    emitted for them: the reference a worker through the broker is held to."""

    events: list[dict[str, Any]]
    rules: Path
    triggers: list[dict[str, Any]]
    summary: dict[str, Any]

    def expected_counts(self) -> dict[str, int]:
        return dict(Counter(e["user_id"] for e in self.events))


def replayed_history(
    work_dir: Path, rules_text: str, users: int, days: float, seed: int, partitions: int
) -> ReplayedHistory:
    """Simulate a history, write it and the rules under `work_dir`, and replay it."""
    from scoring.config import load_config
    from simulator import generate
    from streams.replay import run_replay

    work_dir.mkdir(parents=True, exist_ok=True)
    rules = work_dir / "rules.toml"
    rules.write_text(rules_text)
    stream, _ = generate(users=users, days=days, seed=seed)
    events = list(stream)
    source = work_dir / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    reference = work_dir / "replay-triggers.jsonl"
    replay = run_replay(source, load_config(rules), triggers_path=reference, progress=False,
                        partitions=partitions)
    triggers = [json.loads(line) for line in reference.read_text().splitlines()]
    return ReplayedHistory(events, rules, triggers, replay.summary)


def keyed(events: Iterable[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    """Events as records to produce, keyed by user (as a producer would key them)."""
    return [(e["user_id"].encode(), json.dumps(e).encode()) for e in events]


def kill_worker_partway(
    bootstrap: str, names: TopicNames, tmp_path: Path, records: list[tuple[bytes | None, bytes]]
) -> None:
    """A worker given `records` and SIGKILLed once it has issued 20 triggers and worked a
    second more: some offsets committed, some not; no clean shutdown, no final commit."""
    with running_worker(bootstrap, names, tmp_path, log_name="first.log") as worker:
        produce(bootstrap, names.interactions, records)
        read_topic(bootstrap, names.audit, lambda rs: len(rs) >= 20)
        time.sleep(1.0)
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()


def latest_by_user(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        latest[r["user_id"]] = r
    return latest


def read_until_counted(
    bootstrap: str, names: TopicNames, expected: dict[str, int], timeout_s: float = 120.0,
    while_growing_s: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Read engagement.scores until each user's latest record counts `expected` events;
    returns the latest record per user (whatever was there at the timeout)."""
    return latest_by_user(read_topic(bootstrap, names.scores, all_counted(expected),
                                     timeout_s=timeout_s, while_growing_s=while_growing_s))


def all_counted(expected: dict[str, int]) -> Callable[[list[dict[str, Any]]], bool]:
    """Score records read so far hold, for each user, a latest record counting `expected`."""

    def counted(records: list[dict[str, Any]]) -> bool:
        latest = latest_by_user(records)
        return all(latest.get(u, {}).get("events_counted") == n for u, n in expected.items())

    return counted


def input_progress(bootstrap: str, names: TopicNames) -> dict[int, tuple[int, int]]:
    """Per input partition, (the worker group's committed offset, the end offset): says
    whether records short of a count were never consumed or consumed and not counted."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"{names.prefix}app",
                             enable_auto_commit=False)
    try:  # `committed` reads the group's offsets without joining it
        tps = [TopicPartition(names.interactions, p)
               for p in sorted(consumer.partitions_for_topic(names.interactions) or [])]
        ends = consumer.end_offsets(tps)
        return {tp.partition: (consumer.committed(tp) or -1, ends[tp]) for tp in tps}
    finally:
        consumer.close()


# When a count is short, the report says where the records went: never consumed (the
# partition's committed offset short of its end) or consumed and not counted.
def shortfall_report(
    bootstrap: str,
    names: TopicNames,
    expected: dict[str, int],
    counted: dict[str, int],
    worker: WorkerHandle | None = None,
) -> str:
    """Who is short by how much, each input partition's (committed, end) offsets, the dead
    letters and (given the running worker) how it classified what it consumed: whether
    records were never consumed, or consumed and not counted."""
    short = [(u, n - counted.get(u, 0)) for u, n in expected.items() if counted.get(u) != n]
    dead = read_topic(bootstrap, names.dlq, lambda rs: False, timeout_s=3)
    outcomes = ""
    if worker is not None:
        with contextlib.suppress(OSError):
            outcomes = "; consumed by outcome: " + ", ".join(
                line for line in worker.metrics(timeout_s=5).splitlines()
                if line.startswith("engage_events_consumed_total{"))
    return (f"short: {short}; (committed, end) per input partition: "
            f"{input_progress(bootstrap, names)}; dead letters: "
            f"{[(d.get('reason'), d.get('detail')) for d in dead][:10]}{outcomes}")
