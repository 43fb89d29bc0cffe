"""The webhook sink end to end: trigger topic -> signed POSTs -> dead letters, on a real broker."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

from sinks.metrics import Metrics
from sinks.webhook import SIGNATURE_HEADER, TRIGGER_ID_HEADER, run_webhook_sink, verify

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


class _Server:
    """Loopback webhook receiver: 500 for BAD_ID, 200 for everything else."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, bytes, bool]] = []  # (trigger id, body, sig ok)
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                trigger_id = self.headers.get(TRIGGER_ID_HEADER)
                ok = verify(SECRET, body, self.headers.get(SIGNATURE_HEADER))
                with lock:
                    outer.requests.append((trigger_id, body, ok))
                self.send_response(500 if trigger_id == BAD_ID else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(timeout=5)


def test_sink_delivers_treatments_and_dead_letters_failures(
    kafka_bootstrap: str, server: _Server
) -> None:
    prefix = f"wh{uuid.uuid4().hex[:8]}."
    source = f"{prefix}triggers.milestone"
    dlq = f"{prefix}triggers.webhook.dlq"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics(
            [NewTopic(source, 1, 1), NewTopic(dlq, 1, 1)], timeout_ms=30_000
        )
    finally:
        admin.close()

    triggers = [
        _trigger("trig-good-1", "u1"),
        _trigger(BAD_ID, "u2"),
        _trigger("trig-ctrl", "u3", variant="control"),
        _trigger("trig-good-2", "u4"),
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for t in triggers:
            producer.send(
                source, key=t["user_id"].encode(), value=json.dumps(t).encode()
            ).get(timeout=30)
    finally:
        producer.close(timeout=10)

    sleeps: list[float] = []
    metrics = Metrics()
    stats = run_webhook_sink(
        kafka_bootstrap, server.url, SECRET, ["milestone"], topic_prefix=prefix,
        group_id=f"{prefix}webhook", stop_after=4, idle_timeout_s=60, max_attempts=3,
        timeout_s=5, sleep=sleeps.append, metrics=metrics,
    )

    assert stats.consumed == 4
    assert stats.delivered == 2
    assert stats.skipped_control == 1
    assert stats.dead_lettered == 1
    outcomes = {
        o: metrics.registry.get_sample_value("engage_webhook_deliveries_total", {"outcome": o})
        for o in ("delivered", "failed", "skipped_control")
    }
    assert outcomes == {"delivered": 2, "failed": 1, "skipped_control": 1}
    assert len(sleeps) == 2  # backoff between the bad trigger's three attempts

    ids = [trigger_id for trigger_id, _body, _ok in server.requests]
    assert sorted(str(i) for i in ids if i != BAD_ID) == ["trig-good-1", "trig-good-2"]
    assert ids.count(BAD_ID) == 3
    assert "trig-ctrl" not in ids
    assert all(ok for _id, _body, ok in server.requests)  # every request signed correctly
    sent = {i: json.loads(body) for i, body, _ok in server.requests}
    assert sent["trig-good-1"] == triggers[0]

    consumer = KafkaConsumer(
        dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=5_000,
    )
    try:
        dead = [json.loads(r.value) for r in consumer]
    finally:
        consumer.close()
    assert len(dead) == 1
    record = dead[0]
    assert record["reason"] == "delivery_failed"
    assert record["attempts"] == 3
    assert record["last_status"] == 500
    assert record["url"] == server.url
    assert record["topic"] == source
    assert record["partition"] == 0
    assert record["offset"] == 1
    assert json.loads(record["original"])["trigger_id"] == BAD_ID

    # Offsets were committed: the same group resumes after the last record.
    probe = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=f"{prefix}webhook",
        enable_auto_commit=False,
    )
    try:
        assert probe.committed(TopicPartition(source, 0)) == 4
    finally:
        probe.close()
