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


class FakeBatchProducer(FakeProducer):
    """Also sends a batch's outputs as record batches, one per topic (as the worker does per
    topic partition), failing them as scripted under "batch:<topic>"; or fails the whole
    call (e.g. no metadata) with `refuse`."""

    def __init__(self, script: dict[str, list[BaseException | None]],
                 refuse: Exception | None = None) -> None:
        super().__init__(script)
        self.batches: list[tuple[str, list[bytes]]] = []
        self.refuse = refuse

    async def send_batches(self, records: Any) -> list[Any]:
        if self.refuse is not None:
            raise self.refuse
        by_topic: dict[str, list[Any]] = {}
        for r in records:
            by_topic.setdefault(r.topic, []).append(r)
        sent = []
        for topic, group in by_topic.items():
            outcomes = self.script.get(f"batch:{topic}", [])
            outcome = outcomes.pop(0) if outcomes else None
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if outcome is None:
                self.batches.append((topic, [r.value for r in group]))
                future.set_result(None)
            else:
                future.set_exception(outcome)
            sent.append((group, future, None))
        return sent


def batch_outbox(producer: FakeBatchProducer, metrics: Metrics,
                 sleeps: list[float]) -> KafkaOutbox:
    return KafkaOutbox(producer.send, "dlq", metrics, backoff_s=0.5, max_backoff_s=4.0,
                       sleep=lambda s: _record(sleeps, s), send_batches=producer.send_batches)


def test_outputs_go_as_record_batches_with_no_send_per_record() -> None:
    producer, metrics, sleeps = FakeBatchProducer({}), Metrics(), []
    records = [OutRecord("scores", b"u1", b"1"), OutRecord("audit", b"u1", b"2"),
               OutRecord("scores", b"u2", b"3")]
    asyncio.run(batch_outbox(producer, metrics, sleeps).deliver(records))
    assert producer.batches == [("scores", [b"1", b"3"]), ("audit", [b"2"])]
    assert producer.attempts == 0 and sleeps == []


def test_a_failed_record_batch_goes_again_record_by_record_the_others_not() -> None:
    # the scores batch fails transiently; its records are retried alone (one more failure,
    # then acked), the audit batch is not sent again
    producer = FakeBatchProducer({"batch:scores": [KafkaConnectionError()],
                                  "scores": [KafkaConnectionError()]})
    metrics, sleeps = Metrics(), []
    box = batch_outbox(producer, metrics, sleeps)
    asyncio.run(box.deliver([OutRecord("scores", b"u1", b"1"), OutRecord("audit", b"u1", b"2"),
                             OutRecord("scores", b"u2", b"3")]))
    assert producer.batches == [("audit", [b"2"])]
    assert sorted(producer.acked) == [("scores", b"1"), ("scores", b"3")]
    assert producer.attempts == 3 and len(sleeps) == 1  # 2 records, then the one retried
    assert box.stalled_since is None and metrics.output_stalled._value.get() == 0
    # the batch's 2 records retried one by one, then the first of them once more
    assert metrics.output_failures.labels("scores", "retried")._value.get() == 3
    assert metrics.output_failures.labels("audit", "retried")._value.get() == 0


def test_a_record_batch_kafka_refuses_ends_as_dead_letters_of_its_refused_records() -> None:
    too_large = MessageSizeTooLargeError("1200000 bytes")
    producer = FakeBatchProducer({"batch:triggers.x": [too_large], "triggers.x": [None, too_large]})
    metrics, sleeps = Metrics(), []
    big = b"x" * 200_000
    asyncio.run(batch_outbox(producer, metrics, sleeps).deliver(
        [OutRecord("triggers.x", b"u", b"small"), OutRecord("triggers.x", b"u", big)]))
    assert [t for t, _ in producer.acked] == ["triggers.x", "dlq"]
    assert metrics.output_failures.labels("triggers.x", "permanent")._value.get() == 1


def test_outputs_go_record_by_record_when_the_batches_cannot_be_made() -> None:
    from aiokafka.errors import KafkaTimeoutError

    producer = FakeBatchProducer({}, refuse=KafkaTimeoutError())
    asyncio.run(batch_outbox(producer, Metrics(), []).deliver(
        [OutRecord("scores", b"u1", b"1"), OutRecord("audit", b"u1", b"2")]))
    assert producer.acked == [("scores", b"1"), ("audit", b"2")] and producer.batches == []
