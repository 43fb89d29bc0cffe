"""Delivering a batch's output records to Kafka before its state is stored.

`KafkaOutbox.deliver` returns only when every record is acknowledged by the broker or, for a
record Kafka will never take (too large, invalid), when a dead letter standing for it is.
Transient failures (broker down, leader moving, timeouts) are retried with capped
exponential backoff for as long as they last — outputs are never skipped, since the state
stored after them says they were sent — while `stalled_since` and the metrics say so, for
`/readyz` and alerts. Cancellation (shutdown) interrupts the wait at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sinks.dead_letters import dead_letter_record
from sinks.metrics import Metrics

log = logging.getLogger("engage.outbox")

# send(topic, key, value, partition, headers) -> a future resolved when the broker acks
Send = Callable[
    [str, bytes | None, bytes, int | None, Sequence[tuple[str, bytes]] | None],
    Awaitable[Awaitable[Any]],
]


# send_group(topic, partition, records) -> a future resolved when the broker acks them all,
# appended to the partition's log as one record batch (all or none); raises GroupTooLarge
SendGroup = Callable[[str, int, Sequence["OutputRecord"]], Awaitable[Awaitable[Any]]]


# send_batches(records) -> for each record batch written: (its records, one topic partition's,
# in order; the future resolved when the broker acks them, or None; why the send failed)
SentBatch = tuple[list["OutputRecord"], Awaitable[Any] | None, BaseException | None]
SendBatches = Callable[[Sequence["OutputRecord"]], Awaitable[list[SentBatch]]]


class GroupTooLarge(Exception):
    """A group of records does not fit one record batch."""


class OutputRecord(Protocol):
    """What the outbox needs of a record (streams.processor.OutRecord has these fields)."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None
    headers: Sequence[tuple[str, bytes]] | None


def _root(exc: BaseException) -> BaseException:
    """Faust wraps the client's error in ProducerSendError; judge the client's own."""
    return exc.__cause__ if exc.__cause__ is not None else exc


def is_permanent(exc: BaseException) -> bool:
    """An error retrying cannot cure: a Kafka error not marked retriable (too large, invalid
    topic, unauthorized...). Timeouts and connection trouble are transient."""
    from aiokafka.errors import KafkaError, KafkaTimeoutError

    root = _root(exc)
    if isinstance(root, KafkaTimeoutError):
        return False
    return isinstance(root, KafkaError) and not getattr(root, "retriable", False)


async def _started(
    send: Awaitable[Awaitable[Any]],
) -> tuple[Awaitable[Any] | None, BaseException | None]:
    """(the acknowledgement to await, None), or (None, why the send itself failed)."""
    try:
        return await send, None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return None, exc


def _describe(topic: str, error: BaseException) -> str:
    return f"{topic}: {type(_root(error)).__name__}: {_root(error)}"


async def _acknowledged(
    future: Awaitable[Any] | None, send_error: BaseException | None
) -> BaseException | None:
    """None once the broker acknowledged; else why not (the send's own error, or the ack's)."""
    if future is None:
        return send_error
    try:
        await future
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return exc
    return None


def _is_kafka(exc: BaseException) -> bool:
    """An error of Kafka's client (else a group's path is broken: go record by record)."""
    from aiokafka.errors import KafkaError

    return isinstance(_root(exc), KafkaError)


class _DeadOutput:
    """A dead letter standing for an output Kafka refused."""

    __slots__ = ("headers", "key", "partition", "topic", "value")

    def __init__(self, dlq: str, record: Any, exc: BaseException) -> None:
        self.topic = dlq
        self.key = record.key
        self.partition = None
        self.headers = None
        self.value = dead_letter_record(
            reason="output_failed",
            detail=f"{type(_root(exc)).__name__}: {_root(exc)}",
            original=record.value,
            topic=record.topic,
            partition=None,
            offset=None,
            key=record.key,
        )


class KafkaOutbox:
    def __init__(
        self,
        send: Send,
        dlq_topic: str,
        metrics: Metrics,
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        send_group: SendGroup | None = None,
        send_batches: SendBatches | None = None,
    ) -> None:
        self.send = send
        self.send_group = send_group
        self.send_batches = send_batches
        self.dlq_topic = dlq_topic
        self.metrics = metrics
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep
        self.stalled_since: float | None = None  # monotonic time of the first failed round
        self.last_error: str | None = None

    async def deliver(self, records: Sequence[OutputRecord]) -> None:
        """Every record acknowledged (or, refused for good, its dead letter). With
        `send_batches`, records go as one record batch per topic partition: about 4 µs of
        CPU a record instead of 7 for a send each (benchmarks/bench_outputs.py). A batch that
        fails is sent again record by record, where each record is retried or dead-lettered
        on its own."""
        if self.send_batches is None or not records:
            await self._each(records)
            return
        try:
            sent = await self.send_batches(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. no metadata for a topic: the records tell more
            log.info("outputs sent record by record: %s", _describe(records[0].topic, exc))
            await self._each(records)
            return
        failed: list[OutputRecord] = []
        for batch, future, send_error in sent:
            error = await _acknowledged(future, send_error)
            if error is not None:
                self.last_error = _describe(batch[0].topic, error)
                self.metrics.output_failures.labels(batch[0].topic, "retried").inc(len(batch))
                failed.extend(batch)
        if failed:
            await self._each(failed)
        else:
            self._flowing()

    async def _each(self, records: Sequence[OutputRecord]) -> None:
        """Record by record: transient failures retried with backoff, permanent ones
        dead-lettered."""
        pending: list[Any] = list(records)
        attempt = 0
        while pending:
            retry: list[Any] = []
            replaced: list[Any] = []
            futures: list[tuple[Any, Awaitable[Any] | None, BaseException | None]] = []
            for record in pending:
                futures.append((record, *await _started(self.send(
                    record.topic, record.key, record.value, record.partition, record.headers
                ))))
            for record, future, send_error in futures:
                error = await _acknowledged(future, send_error)
                if error is not None:
                    self._failed(record, error, retry, replaced)
            if retry:
                attempt += 1
                await self._back_off(retry, attempt)
            pending = retry + replaced
        self._flowing()

    async def deliver_together(self, groups: Sequence[Sequence[OutputRecord]]) -> None:
        """Deliver each group — records of one topic partition — as one record batch, which
        Kafka appends whole or not at all: a crash can never leave half of a group in the
        log (a batch's user states without its partition record). Transient failures retry
        the group; a group that does not fit one batch, or that Kafka refuses, is delivered
        record by record, its last record only once the others are acknowledged (logged and
        counted as `not_atomic`)."""
        if self.send_group is None:
            for group in groups:
                await self._one_by_one(group)
            return
        pending = [list(g) for g in groups if g]
        attempt = 0
        while pending:
            sent: list[tuple[list[Any], Awaitable[Any] | None, BaseException | None]] = []
            for group in pending:
                first = group[0]
                assert first.partition is not None, "a group names its partition"
                sent.append((group, *await _started(
                    self.send_group(first.topic, first.partition, group))))
            retry: list[list[Any]] = []
            for group, future, send_error in sent:
                error = await _acknowledged(future, send_error)
                if error is None:
                    continue
                if isinstance(error, GroupTooLarge) or is_permanent(error) or not _is_kafka(error):
                    self.metrics.output_failures.labels(group[0].topic, "not_atomic").inc()
                    log.warning("%d records delivered one by one, not as one batch: %s",
                                len(group), error)
                    await self._one_by_one(group)
                    continue
                self.last_error = _describe(group[0].topic, error)
                retry.append(group)
            if retry:
                attempt += 1
                await self._back_off([r for g in retry for r in g], attempt)
            pending = retry
        self._flowing()

    def _failed(
        self, record: Any, error: BaseException, retry: list[Any], replaced: list[Any]
    ) -> None:
        self.last_error = _describe(record.topic, error)
        if not is_permanent(error):
            retry.append(record)
            return
        self.metrics.output_failures.labels(record.topic, "permanent").inc()
        if record.topic == self.dlq_topic:  # even its dead letter cannot be written
            log.error("dropping a dead letter Kafka refuses: %s", self.last_error)
            return
        log.error("output refused, dead-lettered instead: %s", self.last_error)
        replaced.append(_DeadOutput(self.dlq_topic, record, error))

    async def _one_by_one(self, group: Sequence[OutputRecord]) -> None:
        """A group record by record: its last (a partition record) only once all before it
        are acknowledged."""
        await self._each(group[:-1])
        await self._each(group[-1:])

    async def _back_off(self, retry: list[Any], attempt: int) -> None:
        """Report the stall, then wait: capped exponential backoff with jitter."""
        self._stalled(retry, attempt)
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** min(attempt - 1, 16))
        await self.sleep(delay * (0.5 + random.random() / 2))

    def _flowing(self) -> None:
        if self.stalled_since is not None:
            log.warning("outputs flow again after %.1f s", time.monotonic() - self.stalled_since)
        self.stalled_since = None
        self.metrics.output_stalled.set(0)

    def _stalled(self, retry: list[Any], attempt: int) -> None:
        if self.stalled_since is None:
            self.stalled_since = time.monotonic()
        self.metrics.output_stalled.set(1)
        for record in retry:
            self.metrics.output_failures.labels(record.topic, "retried").inc()
        log.warning(
            "%d outputs not acknowledged (attempt %d, last error %s); retrying",
            len(retry), attempt, self.last_error,
        )
