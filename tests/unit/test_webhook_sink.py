"""The webhook sink object: outcomes, offsets in order, per-key order, concurrency per partition.

Deliveries go to a real loopback HTTP server; dead letters to an in-memory publisher (the
Kafka path is covered by tests/integration/test_webhook_sink.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sinks.webhook import (
    DELIVERY_FAILED,
    OffsetTracker,
    SinkFailed,
    TriggerRecord,
    WebhookSink,
    read_trigger,
)
from sinks.webhook_delivery import RetryPolicy, WebhookDelivery
from sinks.webhook_metrics import WebhookMetrics
from sinks.webhook_signing import Signer
from tests.webhook_receiver import Policy, Received, serve

SECRET = b"sink-secret"
TOPIC = "triggers.milestone"
DEAD_LETTER_SCHEMA = json.loads(
    resources.files("scoring").joinpath("schemas/dead-letter.v1.json").read_text()
)


class DeadLetters(list[tuple[bytes | None, bytes]]):
    """Collects dead letters as the runtime's producer would write them."""

    async def __call__(self, key: bytes | None, value: bytes) -> None:
        self.append((key, value))

    def records(self) -> list[dict[str, Any]]:
        return sorted((json.loads(v) for _k, v in self), key=lambda r: int(r["offset"]))


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def trigger(trigger_id: str, **fields: Any) -> bytes:
    body = {"trigger_id": trigger_id, "type": "milestone", "user_id": "u",
            "variant": "treatment", "expires_at": "2099-01-01T00:00:00.000Z"}
    body.update(fields)
    return json.dumps(body).encode()


def record(
    offset: int, value: bytes | None, key: bytes | None = b"u", partition: int = 0
) -> TriggerRecord:
    return TriggerRecord(TOPIC, partition, offset, key, value)


def make_sink(url: str, dead: DeadLetters, metrics: WebhookMetrics | None = None,
              **options: Any) -> tuple[WebhookSink, WebhookDelivery]:
    delivery = WebhookDelivery(url, Signer(SECRET), RetryPolicy(max_attempts=3, timeout_s=5),
                               metrics=metrics, sleep=Sleeps())
    return WebhookSink(delivery, dead, metrics=metrics, **options), delivery


async def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def id_of(req: Received) -> str:
    return str(req.trigger_id)


# ------------------------------------------------------------------ offsets


def test_offset_tracker_moves_over_the_finished_prefix_only() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 15):  # a gap, as after compaction
        tracker.add(offset)
    tracker.done(11)
    assert tracker.commit_point is None and len(tracker) == 3
    tracker.done(10)
    assert tracker.commit_point == 12 and len(tracker) == 1
    tracker.done(15)
    assert tracker.commit_point == 16 and len(tracker) == 0
    with pytest.raises(ValueError):
        tracker.add(15)


def held(*trigger_ids: str) -> tuple[threading.Event, Policy]:
    """A policy that answers 200, holding `trigger_ids` (all when none) until the event is set."""
    release = threading.Event()

    def policy(_n: int, req: Received) -> int:
        if not trigger_ids or id_of(req) in trigger_ids:
            release.wait(timeout=10)
        return 200

    return release, policy


async def test_commit_waits_for_the_slowest_earlier_record() -> None:
    release, policy = held("slow")
    dead = DeadLetters()
    with serve(policy) as server:
        sink, delivery = make_sink(server.url, dead)
        async with delivery:
            sink.add(record(0, trigger("slow"), key=b"a"))
            for offset, key in enumerate((b"b", b"c", b"d", b"e"), start=1):
                sink.add(record(offset, trigger(f"fast-{offset}"), key=key))
            await wait_for(lambda: sink.stats.delivered == 4)
            assert sink.committable() == {}
            assert sink.backlog((TOPIC, 0)) == 5
            release.set()
            assert await sink.flush(timeout=10)
    assert sink.committable() == {(TOPIC, 0): 5}
    assert sink.backlog((TOPIC, 0)) == 0
    assert sorted(server.delivered()) == ["fast-1", "fast-2", "fast-3", "fast-4", "slow"]


async def test_one_keys_records_are_delivered_in_order_across_retries() -> None:
    def policy(_n: int, req: Received) -> int:
        tries_of_a = sum(1 for r in server.received if id_of(r) == "a")
        return 500 if id_of(req) == "a" and tries_of_a <= 2 else 200

    dead = DeadLetters()
    with serve(policy) as server:
        sink, delivery = make_sink(server.url, dead)
        async with delivery:
            sink.add(record(0, trigger("a"), key=b"u"))
            sink.add(record(1, trigger("b"), key=b"u"))
            sink.add(record(2, trigger("c"), key=b"v"))
            assert await sink.flush(timeout=10)
    order = [id_of(r) for r in server.received if id_of(r) in ("a", "b")]
    assert order == ["a", "a", "a", "b"]
    assert server.delivered() == {"a": 1, "b": 1, "c": 1}
    assert sink.committable() == {(TOPIC, 0): 3}
    assert dead == []


async def test_concurrency_is_per_partition_over_pooled_connections() -> None:
    together = threading.Barrier(4)  # passes only when four requests are in flight at once

    def policy(_n: int, _req: Received) -> int:
        together.wait(timeout=10)
        return 200

    dead = DeadLetters()
    with serve(policy) as server:
        sink, delivery = make_sink(server.url, dead, concurrency=2)
        async with delivery:
            for partition in (0, 1):
                for offset in range(4):
                    key = f"k{partition}{offset}".encode()
                    sink.add(record(offset, trigger(f"t{partition}{offset}"), key, partition))
            assert await sink.flush(timeout=20)
    assert server.max_concurrent == 4  # two per partition, two partitions
    assert len(server.delivered()) == 8
    assert len({r.client_port for r in server.received}) <= 4  # keep-alive connections reused
    assert sink.committable() == {(TOPIC, 0): 4, (TOPIC, 1): 4}


# ------------------------------------------------------------------ outcomes


async def test_every_outcome_is_counted_and_dead_letters_follow_the_shared_record() -> None:
    records = [
        record(0, trigger("good")),
        record(1, trigger("ctrl", variant="control")),
        record(2, trigger("old", expires_at="2000-01-01T00:00:00.000Z")),
        record(3, b"{x"),
        record(4, b"[1]"),
        record(5, b'{"type": "milestone"}'),
        record(6, b'{"trigger_id": 7}'),
        record(7, b"\xff\xfe", key=None),
        record(8, trigger("refused")),
        record(9, None),
    ]
    metrics, dead = WebhookMetrics(), DeadLetters()
    with serve(lambda _n, req: 400 if id_of(req) == "refused" else 200) as server:
        sink, delivery = make_sink(server.url, dead, metrics)
        async with delivery:
            for r in records:
                sink.add(r)
            assert await sink.flush(timeout=10)
    assert sink.committable() == {(TOPIC, 0): 10}
    stats = sink.stats
    assert (stats.consumed, stats.delivered, stats.failed, stats.malformed,
            stats.skipped_control, stats.expired, stats.finished) == (10, 1, 1, 6, 1, 1, 10)
    assert stats.dead_lettered == 7
    assert sorted(id_of(r) for r in server.received) == ["good", "refused"]
    outcomes = {
        o: metrics.registry.get_sample_value("engage_webhook_deliveries_total", {"outcome": o})
        for o in ("delivered", "failed", "malformed", "skipped_control", "expired")
    }
    assert outcomes == {"delivered": 1, "failed": 1, "malformed": 6, "skipped_control": 1,
                        "expired": 1}

    letters = dead.records()
    assert [(r["offset"], r["reason"]) for r in letters] == [
        (3, "malformed_json"), (4, "not_an_object"), (5, "missing_field"), (6, "wrong_type"),
        (7, "malformed_json"), (8, DELIVERY_FAILED), (9, "null_value"),
    ]
    assert letters[5]["detail"] == f"HTTP 400 after 1 attempt to {server.url}"
    assert json.loads(letters[5]["original"])["trigger_id"] == "refused"
    assert (letters[6]["original"], letters[6]["original_encoding"]) == (None, "null")
    assert letters[4]["original_encoding"] == "base64" and "key" not in letters[4]
    assert letters[0]["key"] == "u" and letters[0]["topic"] == TOPIC
    assert [key for key, _v in sorted(dead, key=lambda kv: json.loads(kv[1])["offset"])] == [
        b"u", b"u", b"u", b"u", None, b"u", b"u"
    ]
    validator = Draft202012Validator(DEAD_LETTER_SCHEMA)
    for letter in letters:
        validator.validate(letter)


async def test_expired_triggers_are_delivered_when_asked() -> None:
    dead = DeadLetters()
    with serve() as server:
        sink, delivery = make_sink(server.url, dead, deliver_expired=True)
        async with delivery:
            sink.add(record(0, trigger("old", expires_at="2000-01-01T00:00:00.000Z")))
            assert await sink.flush(timeout=10)
    assert (sink.stats.delivered, sink.stats.expired) == (1, 1)
    assert server.delivered() == {"old": 1}


def test_read_trigger() -> None:
    assert read_trigger(trigger("x"))["trigger_id"] == "x"  # type: ignore[index]
    assert read_trigger(None).reason == "null_value"  # type: ignore[union-attr]
    assert read_trigger(b"").reason == "malformed_json"  # type: ignore[union-attr]
    assert read_trigger(b'"text"').reason == "not_an_object"  # type: ignore[union-attr]


# ------------------------------------------------------------------ revocation, failure


async def test_release_cancels_deliveries_of_revoked_partitions() -> None:
    release, policy = held()
    dead = DeadLetters()
    with serve(policy) as server:
        sink, delivery = make_sink(server.url, dead)
        async with delivery:
            sink.add(record(0, trigger("held")))
            await wait_for(lambda: len(server.received) == 1)
            assert not await sink.flush(timeout=0.05)
            await sink.release([(TOPIC, 0)])
            assert sink.committable() == {} and sink.pending() == 0
            release.set()
    assert sink.stats.delivered == 0 and sink.stats.finished == 0


async def test_a_dead_letter_that_cannot_be_written_stops_the_sink() -> None:
    async def broken(_key: bytes | None, _value: bytes) -> None:
        raise RuntimeError("dead-letter topic unreachable")

    with serve() as server:
        delivery = WebhookDelivery(server.url, Signer(SECRET))
        sink = WebhookSink(delivery, broken)
        async with delivery:
            sink.add(record(0, b"{x"))
            sink.add(record(1, trigger("fine"), key=b"w"))
            await sink.flush(timeout=10)
    with pytest.raises(SinkFailed, match="dead-letter topic unreachable"):
        sink.raise_if_failed()
    assert sink.committable() == {}  # offset 0 was neither delivered nor dead-lettered
    assert sink.backlog((TOPIC, 0)) == 2

