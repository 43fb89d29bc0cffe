"""The webhook sink end to end on a real broker: trigger topics -> signed POSTs -> dead letters.

The flaky-endpoint test is the one that matters: half the answers are 500s and a few take
longer than the consumer's max poll interval, yet every trigger is delivered, the sink never
leaves its consumer group, and the offsets are committed to the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

from sinks.webhook_consumer import RunReport, TopicMissing, WebhookSettings, run_webhook_sink
from sinks.webhook_delivery import RetryPolicy
from sinks.webhook_metrics import WebhookMetrics
from sinks.webhook_signing import verify
from tests.integration.worker_process import ROOT, free_port
from tests.webhook_receiver import Received, Reply, serve

pytestmark = pytest.mark.kafka

SECRET = b"integration-secret"
BAD_ID = "trig-bad"


def _trigger(trigger_id: str, user_id: str, variant: str = "treatment") -> dict[str, Any]:
    return {
        "trigger_id": trigger_id,
        "type": "milestone",
        "user_id": user_id,
        "variant": variant,
        "event_time": "2026-01-05T13:04:05.123Z",
        "emitted_at": "2026-01-05T13:04:05.200Z",
        "expires_at": "2099-01-01T00:00:00.000Z",
        "reason": {"rule": "milestone.events_100", "features": {"events_total": 100}},
        "score": 71.5,
        "tier": "gold",
        "churn_probability": 0.12,
    }


def _create_topics(bootstrap: str, *topics: tuple[str, int]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(t, n, 1) for t, n in topics], timeout_ms=30_000)
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, records: list[tuple[int, bytes, dict[str, Any]]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for partition, key, value in records:
            producer.send(topic, key=key, value=json.dumps(value).encode(), partition=partition)
        producer.flush(30)
    finally:
        producer.close(timeout=10)


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int | None]:
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return [probe.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        probe.close()


def _run(settings: WebhookSettings, metrics: WebhookMetrics, stop_after: int) -> RunReport:
    return asyncio.run(run_webhook_sink(settings, metrics=metrics, stop_after=stop_after,
                                        idle_timeout_s=120))


@contextmanager
def _group_members(bootstrap: str, group: str) -> Iterator[set[str]]:
    """Every member id the group coordinator reports for `group`, polled once a second."""
    seen: set[str] = set()
    done = threading.Event()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)

    def watch() -> None:
        while not done.wait(1.0):
            described = admin.describe_groups([group]).get(group, {})
            seen.update(m["member_id"] for m in described.get("members", []))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(timeout=15)
        admin.close()


def test_sink_delivers_treatments_and_dead_letters_failures(kafka_bootstrap: str) -> None:
    prefix = f"wh{uuid.uuid4().hex[:8]}."
    source, dlq = f"{prefix}triggers.milestone", f"{prefix}triggers.webhook.dlq"
    _create_topics(kafka_bootstrap, (source, 1), (dlq, 1))
    triggers = [
        _trigger("trig-good-1", "u1"),
        _trigger(BAD_ID, "u2"),
        _trigger("trig-ctrl", "u3", variant="control"),
        _trigger("trig-good-2", "u4"),
    ]
    _produce(kafka_bootstrap, source, [(0, t["user_id"].encode(), t) for t in triggers])

    metrics = WebhookMetrics()
    with serve(lambda _n, req: 500 if req.trigger_id == BAD_ID else 200) as server:
        settings = WebhookSettings(
            url=server.url, secret=SECRET, broker=kafka_bootstrap, types=("milestone",),
            topic_prefix=prefix, group_id=f"{prefix}webhook",
            retry=RetryPolicy(max_attempts=3, timeout_s=5, backoff_base_s=0.01),
        )
        report = _run(settings, metrics, stop_after=4)

    stats = report.sink
    assert stats.consumed == 4
    assert stats.delivered == 2
    assert stats.skipped_control == 1
    assert stats.dead_lettered == 1
    sample = metrics.registry.get_sample_value
    outcomes = {o: sample("engage_webhook_deliveries_total", {"outcome": o})
                for o in ("delivered", "failed", "skipped_control")}
    assert outcomes == {"delivered": 2, "failed": 1, "skipped_control": 1}
    # Three attempts for the bad trigger (two backoffs between them), one for each good one.
    assert sample("engage_webhook_attempts_total", {"result": "5xx"}) == 3
    assert sample("engage_webhook_attempts_total", {"result": "2xx"}) == 2

    ids = [r.trigger_id for r in server.received]
    assert sorted(str(i) for i in ids if i != BAD_ID) == ["trig-good-1", "trig-good-2"]
    assert ids.count(BAD_ID) == 3
    assert "trig-ctrl" not in ids
    assert all(verify(SECRET, r.body, r.signature) for r in server.received)  # every one signed
    sent = {r.trigger_id: json.loads(r.body) for r in server.received}
    assert sent["trig-good-1"] == triggers[0]

    consumer = KafkaConsumer(
        dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=5_000,
    )
    try:
        dead = [(r.key, json.loads(r.value)) for r in consumer]
    finally:
        consumer.close()
    assert len(dead) == 1
    key, record = dead[0]
    assert key == b"u2" and record["key"] == "u2"
    assert record["reason"] == "delivery_failed"
    assert record["detail"] == f"HTTP 500 after 3 attempts to {server.url}"
    assert record["topic"] == source
    assert record["partition"] == 0
    assert record["offset"] == 1
    assert json.loads(record["original"])["trigger_id"] == BAD_ID

    # Offsets were committed: the same group resumes after the last record.
    assert _committed(kafka_bootstrap, f"{prefix}webhook", source, 1) == [4]
    assert (report.assignments, report.revocations, report.commit_failures) == (1, 0, 0)


PARTITIONS = 3
PER_PARTITION = 40
SLOW_S = 12.0
MAX_POLL_INTERVAL_MS = 10_000


def test_flaky_slow_endpoint_every_trigger_delivered_and_the_group_kept(
    kafka_bootstrap: str,
) -> None:
    """50 % HTTP 500; 6 of 120 triggers (5 %) first answered after 12 s > max poll interval."""
    prefix = f"whf{uuid.uuid4().hex[:8]}."
    source, dlq = f"{prefix}triggers.streak", f"{prefix}triggers.webhook.dlq"
    group = f"{prefix}webhook"
    _create_topics(kafka_bootstrap, (source, PARTITIONS), (dlq, 1))
    rng = random.Random(20260105)
    records: list[tuple[int, bytes, dict[str, Any]]] = []
    for i in range(PARTITIONS * PER_PARTITION):
        partition, position = i % PARTITIONS, i // PARTITIONS
        user = f"u{partition}-{position % 10}"  # one user's triggers stay in one partition
        records.append((partition, user.encode(), _trigger(f"t{i:04d}", user)))
    # Two slow triggers early in each partition: the 30+ records behind each fill the backlog.
    slow = {records[p + PARTITIONS * pos][2]["trigger_id"]
            for p in range(PARTITIONS) for pos in rng.sample(range(10), 2)}
    _produce(kafka_bootstrap, source, records)

    lock = threading.Lock()
    answered_slowly: set[str] = set()

    def flaky(_n: int, req: Received) -> Reply:
        trigger_id = str(req.trigger_id)
        with lock:
            if trigger_id in slow and trigger_id not in answered_slowly:
                answered_slowly.add(trigger_id)
                return Reply(200, delay_s=SLOW_S)
            fail = rng.random() < 0.5
        return Reply(500 if fail else 200)

    metrics = WebhookMetrics()
    with serve(flaky) as server, _group_members(kafka_bootstrap, group) as members:
        settings = WebhookSettings(
            url=server.url, secret=SECRET, broker=kafka_bootstrap, types=("streak",),
            topic_prefix=prefix, group_id=group,
            # Attempts outlast a 12 s answer; 0.5**30 makes a dead letter practically impossible.
            retry=RetryPolicy(max_attempts=30, timeout_s=SLOW_S + 8, backoff_base_s=0.02,
                              backoff_max_s=0.5),
            concurrency=4, max_pending=10,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS, session_timeout_ms=6_000,
            heartbeat_interval_ms=1_000, commit_interval_s=0.5,
        )
        started = time.monotonic()
        report = _run(settings, metrics, stop_after=len(records))
        took = time.monotonic() - started

    produced = {r[2]["trigger_id"] for r in records}
    delivered = server.delivered()
    # Each trigger exactly once: no attempt timed out and no partition changed hands, the only
    # two ways a trigger is delivered twice (docs/webhook.md).
    assert set(delivered) == produced
    assert set(delivered.values()) == {1}
    assert answered_slowly == slow and len(slow) == 6
    assert took > SLOW_S > MAX_POLL_INTERVAL_MS / 1000
    assert sum(r.status == 500 for r in server.received) > len(records) // 2
    # One user's triggers reached the endpoint in the order they were produced.
    order: dict[str, list[str]] = {}
    for r in server.received:
        if r.status == 200:
            body = json.loads(r.body)
            order.setdefault(body["user_id"], []).append(body["trigger_id"])
    for user, ids in order.items():
        assert ids == sorted(ids), user

    assert report.sink.delivered == len(records) and report.sink.dead_lettered == 0
    assert (report.assignments, report.revocations, report.commit_failures) == (1, 0, 0)
    assert len(members) == 1  # the coordinator saw one member id all along: never evicted
    assert report.ever_paused == {(source, p) for p in range(PARTITIONS)}
    assert _committed(kafka_bootstrap, group, source, PARTITIONS) == [PER_PARTITION] * PARTITIONS
    sample = metrics.registry.get_sample_value
    assert sample("engage_webhook_rebalances_total", {"event": "revoked"}) is None
    assert sample("engage_webhook_in_flight") == 0
    assert sample("engage_webhook_attempts_total", {"result": "timeout"}) is None


def test_engage_webhook_serves_metrics_and_stops_cleanly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"whc{uuid.uuid4().hex[:8]}."
    source = f"{prefix}triggers.vip_promotion"
    _create_topics(kafka_bootstrap, (source, 1), (f"{prefix}triggers.webhook.dlq", 1))
    _produce(kafka_bootstrap, source, [(0, b"u1", _trigger("trig-cli", "u1"))])
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    port = free_port()
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, ENGAGE_TOPIC_PREFIX=prefix,
               ENGAGE_WEBHOOK_SECRET_FILE=str(secret_file), ENGAGE_WEBHOOK_METRICS_PORT=str(port),
               ENGAGE_WEBHOOK_TYPES="vip_promotion")
    env.pop("ENGAGE_WEBHOOK_SECRET", None)
    with serve() as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "webhook", "--url", server.url,
             "--group-id", f"{prefix}webhook"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            deadline, text = time.monotonic() + 60, ""
            delivered = 'engage_webhook_deliveries_total{outcome="delivered"} 1.0'
            while delivered not in text and time.monotonic() < deadline:
                time.sleep(0.2)
                try:
                    url = f"http://127.0.0.1:{port}/metrics"
                    with urllib.request.urlopen(url, timeout=5) as response:
                        text = response.read().decode()
                except OSError:
                    assert proc.poll() is None, proc.communicate()[1].decode()
            assert delivered in text
            for name in ("engage_webhook_attempts_total", "engage_webhook_in_flight",
                         "engage_webhook_request_duration_seconds_bucket",
                         "engage_webhook_pending_records", "engage_webhook_consumer_lag"):
                assert name in text
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "consumed 1, delivered 1" in err.decode()
    assert [r.trigger_id for r in server.received] == ["trig-cli"]
    assert verify(SECRET, server.received[0].body, server.received[0].signature)


def test_a_missing_dead_letter_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    prefix = f"whm{uuid.uuid4().hex[:8]}."
    settings = WebhookSettings(url="http://127.0.0.1:1/hook", secret=SECRET,
                               broker=kafka_bootstrap, topic_prefix=prefix)
    with pytest.raises(TopicMissing, match=f"'{prefix}triggers.webhook.dlq' does not exist"):
        asyncio.run(run_webhook_sink(settings, stop_after=1))
