"""The worker's output path: every record acknowledged before the batch's state is stored;
transient failures retried for as long as they last (and reported), records Kafka will never
take replaced by bounded dead letters."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
)

from sinks.kafka_outbox import GroupTooLarge, KafkaOutbox, is_permanent
from sinks.metrics import Metrics
from streams.processor import OutRecord


class FakeProducer:
    """Acks or fails each send as scripted: a list of outcomes per topic, consumed in order."""

    def __init__(self, script: dict[str, list[BaseException | None]]) -> None:
        self.script = script
        self.acked: list[tuple[str, bytes]] = []
        self.attempts = 0

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None,
                   headers: Any) -> asyncio.Future[None]:
        self.attempts += 1
        outcomes = self.script.get(topic, [])
        outcome = outcomes.pop(0) if outcomes else None
        if isinstance(outcome, MessageSizeTooLargeError):
            raise outcome  # the client refuses at once, before any request
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if outcome is None:
            self.acked.append((topic, value))
            future.set_result(None)
        else:
            future.set_exception(outcome)
        return future


def outbox(producer: FakeProducer, metrics: Metrics, sleeps: list[float]) -> KafkaOutbox:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return KafkaOutbox(producer.send, "dlq", metrics, backoff_s=0.5, max_backoff_s=4.0,
                       sleep=sleep)


def test_transient_failures_are_retried_until_acknowledged() -> None:
    producer = FakeProducer({"scores": [KafkaConnectionError()] * 5})
    metrics, sleeps = Metrics(), []
    box = outbox(producer, metrics, sleeps)
    records = [OutRecord("scores", b"u", b"1"), OutRecord("audit", b"u", b"2")]
    asyncio.run(box.deliver(records))
    assert sorted(producer.acked) == [("audit", b"2"), ("scores", b"1")]
    assert len(sleeps) == 5 and max(sleeps) <= 4.0  # capped backoff, with jitter
    assert box.stalled_since is None and metrics.output_stalled._value.get() == 0
    assert metrics.output_failures.labels("scores", "retried")._value.get() == 5


def test_a_record_kafka_never_takes_becomes_a_dead_letter() -> None:
    too_large = MessageSizeTooLargeError("1200000 bytes")
    producer = FakeProducer({"triggers.x": [too_large], "audit": [NotLeaderForPartitionError()]})
    metrics, sleeps = Metrics(), []
    big = b"x" * 200_000
    asyncio.run(outbox(producer, metrics, sleeps).deliver(
        [OutRecord("triggers.x", b"u", big), OutRecord("audit", b"u", b"ok")]
    ))
    topics = [t for t, _ in producer.acked]
    assert sorted(topics) == ["audit", "dlq"]
    dead = json.loads(next(v for t, v in producer.acked if t == "dlq"))
    assert dead["reason"] == "output_failed" and dead["topic"] == "triggers.x"
    assert dead["partition"] is None and dead["original_size"] == len(big)
    assert "MessageSizeTooLargeError" in dead["detail"]
    assert metrics.output_failures.labels("triggers.x", "permanent")._value.get() == 1


def test_a_dead_letter_kafka_refuses_is_dropped_not_retried_forever() -> None:
    producer = FakeProducer({"dlq": [MessageSizeTooLargeError("no")]})
    asyncio.run(outbox(producer, Metrics(), []).deliver([OutRecord("dlq", None, b"x")]))
    assert producer.acked == [] and producer.attempts == 1


def test_shutdown_interrupts_a_stalled_delivery() -> None:
    producer = FakeProducer({"scores": [KafkaConnectionError()] * 1000})
    box = KafkaOutbox(producer.send, "dlq", Metrics(), backoff_s=0.01, max_backoff_s=0.01)

    async def run() -> None:
        task = asyncio.create_task(box.deliver([OutRecord("scores", b"u", b"1")]))
        await asyncio.sleep(0.1)
        assert box.stalled_since is not None and box.last_error is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_which_errors_are_permanent() -> None:
    from aiokafka.errors import KafkaTimeoutError
    from faust.exceptions import ProducerSendError

    wrapped = ProducerSendError("Error while sending")
    wrapped.__cause__ = MessageSizeTooLargeError()
    assert is_permanent(wrapped) and is_permanent(MessageSizeTooLargeError())
    assert not is_permanent(KafkaTimeoutError()) and not is_permanent(KafkaConnectionError())
    assert not is_permanent(NotLeaderForPartitionError()) and not is_permanent(OSError())


class FakeGroupProducer(FakeProducer):
    """Also takes whole groups (one record batch each), failing them as scripted per topic."""

    def __init__(self, script: dict[str, list[BaseException | None]]) -> None:
        super().__init__(script)
        self.batches: list[list[bytes]] = []

    async def send_group(self, topic: str, partition: int,
                         records: Any) -> asyncio.Future[None]:
        outcomes = self.script.get(f"group:{topic}", [])
        outcome = outcomes.pop(0) if outcomes else None
        if isinstance(outcome, GroupTooLarge | TypeError):
            raise outcome
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if outcome is None:
            self.batches.append([r.value for r in records])
            future.set_result(None)
        else:
            future.set_exception(outcome)
        return future


def test_groups_go_as_one_batch_each_and_are_retried_whole() -> None:
    producer = FakeGroupProducer({"group:changelog": [KafkaConnectionError(), None]})
    metrics, sleeps = Metrics(), []
    box = KafkaOutbox(producer.send, "dlq", metrics, backoff_s=0.5, max_backoff_s=4.0,
                      sleep=lambda s: _record(sleeps, s), send_group=producer.send_group)
    groups = [[OutRecord("changelog", b"u1", b"a", 0), OutRecord("changelog", b"p0", b"b", 0)],
              [OutRecord("changelog", b"u2", b"c", 1), OutRecord("changelog", b"p1", b"d", 1)]]
    asyncio.run(box.deliver_together(groups))
    # the first group failed once (transiently) and went again whole; nothing one by one
    assert sorted(producer.batches) == [[b"a", b"b"], [b"c", b"d"]]
    assert producer.acked == [] and len(sleeps) == 1
    assert box.stalled_since is None


@pytest.mark.parametrize("error", [GroupTooLarge("too many"), TypeError("a broken path")])
def test_a_group_too_large_for_one_batch_goes_record_by_record_in_order(
    error: Exception,
) -> None:
    producer = FakeGroupProducer({"group:changelog": [error]})
    metrics, sleeps = Metrics(), []
    box = KafkaOutbox(producer.send, "dlq", metrics, sleep=lambda s: _record(sleeps, s),
                      send_group=producer.send_group)
    group = [OutRecord("changelog", b"u1", b"a", 0), OutRecord("changelog", b"p0", b"b", 0)]
    asyncio.run(box.deliver_together([group]))
    assert producer.batches == [] and producer.acked == [("changelog", b"a"), ("changelog", b"b")]
    assert metrics.output_failures.labels("changelog", "not_atomic")._value.get() == 1


async def _record(sleeps: list[float], seconds: float) -> None:
    sleeps.append(seconds)
