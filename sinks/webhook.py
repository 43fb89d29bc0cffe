"""Webhook sink: trigger records in, signed POSTs out, and how far each partition may commit.

The sink is an object the runtime drives (sinks/webhook_consumer.py; `engage webhook`):
`add()` each consumed record in offset order, ask `committable()` how far each partition may
be committed, `backlog()` to decide which partitions to pause, `flush()` before a final commit,
and `release()` partitions that were revoked.

Delivery is at-least-once. Records of one partition are delivered concurrently (up to
`concurrency` at a time), but one key's records (one user's) are delivered one after another,
in offset order. An offset becomes committable only when its record and every earlier record
of its partition were delivered (2xx), dead-lettered, or skipped. Receivers dedupe on
`trigger_id`, also sent as `X-Engage-Trigger-Id` (and `webhook-id`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from scoring.timeutil import parse_rfc3339_ms
from sinks.dead_letters import dead_letter_record
from sinks.webhook_delivery import DeliveryResult, WebhookDelivery
from sinks.webhook_metrics import WebhookMetrics

log = logging.getLogger("engage.webhook")

Partition = tuple[str, int]
# Writes one dead letter (key, value) and returns once the broker acknowledged it.
DeadLetterPublisher = Callable[[bytes | None, bytes], Awaitable[None]]

DELIVERY_FAILED = "delivery_failed"


@dataclass(frozen=True)
class TriggerRecord:
    """One consumed record, as the sink needs it (no Kafka client types)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class SinkStats:
    """Counts since the sink was made. `finished` records may be committed (in order)."""

    consumed: int = 0
    delivered: int = 0
    failed: int = 0  # dead-lettered after the last attempt or a final answer
    malformed: int = 0  # dead-lettered unread
    skipped_control: int = 0
    expired: int = 0  # past expires_at: skipped, or delivered when deliver_expired
    finished: int = 0

    @property
    def dead_lettered(self) -> int:
        return self.failed + self.malformed


@dataclass(frozen=True)
class Malformed:
    """Why a record is not a trigger; `reason` is a dead-letter reason code."""

    reason: str
    detail: str


def read_trigger(raw: bytes | None) -> dict[str, Any] | Malformed:
    """The trigger object, or why it cannot be delivered (UTF-8 JSON object, string id)."""
    if raw is None:
        return Malformed("null_value", "the record has no value (a tombstone)")
    try:
        trigger = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        return Malformed("malformed_json", str(exc))
    if not isinstance(trigger, dict):
        return Malformed("not_an_object", f"a JSON {type(trigger).__name__}, not an object")
    if "trigger_id" not in trigger:
        return Malformed("missing_field", "trigger_id is missing")
    if not isinstance(trigger["trigger_id"], str):
        return Malformed("wrong_type", "trigger_id is not a string")
    return trigger


def is_expired(trigger: dict[str, Any], now_s: float) -> bool:
    """True when the trigger's `expires_at` (RFC 3339) is at or before `now_s`."""
    text = trigger.get("expires_at")
    if not isinstance(text, str):
        return False
    try:
        return parse_rfc3339_ms(text) <= now_s * 1000
    except ValueError:
        return False


class OffsetTracker:
    """One partition's offsets in the order consumed; the commit point moves over a done prefix.

    Offsets may have gaps (compaction, transaction markers): only consumed offsets count.
    """

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._commit_point: int | None = None
        self._last_added = -1

    def add(self, offset: int) -> None:
        if offset <= self._last_added:
            raise ValueError(f"offset {offset} added after {self._last_added}")
        self._pending.append(offset)
        self._last_added = offset

    def done(self, offset: int) -> None:
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            first = self._pending.popleft()
            self._done.discard(first)
            self._commit_point = first + 1

    @property
    def commit_point(self) -> int | None:
        """The next offset to commit (every consumed offset below it is done), or None."""
        return self._commit_point

    def __len__(self) -> int:
        """Offsets consumed and not yet committable."""
        return len(self._pending)


class _PartitionState:
    def __init__(self, concurrency: int) -> None:
        self.offsets = OffsetTracker()
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_by_key: dict[bytes, asyncio.Task[None]] = {}


class SinkFailed(RuntimeError):
    """A record could neither be delivered nor dead-lettered: its offset must not be committed."""


class WebhookSink:
    """Delivers trigger records concurrently and tracks which offsets are safe to commit."""

    def __init__(
        self,
        delivery: WebhookDelivery,
        publish_dead_letter: DeadLetterPublisher,
        *,
        concurrency: int = 8,
        deliver_expired: bool = False,
        metrics: WebhookMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._delivery = delivery
        self._publish_dead_letter = publish_dead_letter
        self._concurrency = concurrency
        self._deliver_expired = deliver_expired
        self._metrics = metrics
        self._clock = clock
        self._partitions: dict[Partition, _PartitionState] = {}
        self._failure: BaseException | None = None
        self.stats = SinkStats()

    # ---------------------------------------------------------------- what the runtime calls

    def add(self, record: TriggerRecord) -> None:
        """Take one record (in offset order per partition); delivery starts in the background."""
        partition = (record.topic, record.partition)
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _PartitionState(self._concurrency)
        state.offsets.add(record.offset)
        self.stats.consumed += 1
        trigger = read_trigger(record.value)
        if isinstance(trigger, Malformed):
            self._spawn(state, self._dead_letter_malformed(state, record, trigger))
            return
        if trigger.get("variant") == "control":
            self.stats.skipped_control += 1
            self._finish(state, record, "skipped_control")
            return
        if is_expired(trigger, self._clock()):
            self.stats.expired += 1
            if not self._deliver_expired:
                log.info("trigger %s is past expires_at; skipped", trigger["trigger_id"])
                self._finish(state, record, "expired")
                return
            log.info("trigger %s is past expires_at; delivering anyway", trigger["trigger_id"])
        previous = state.last_by_key.get(record.key) if record.key is not None else None
        task = self._spawn(state, self._deliver(state, record, trigger["trigger_id"], previous))
        if record.key is not None:
            key = record.key
            state.last_by_key[key] = task
            task.add_done_callback(lambda t: _forget_if_last(state.last_by_key, key, t))

    def committable(self) -> dict[Partition, int]:
        """Per partition, the next offset to commit: everything below it is finished."""
        return {
            partition: state.offsets.commit_point
            for partition, state in self._partitions.items()
            if state.offsets.commit_point is not None
        }

    def backlog(self, partition: Partition) -> int:
        """Records of `partition` consumed and not yet committable."""
        state = self._partitions.get(partition)
        return len(state.offsets) if state is not None else 0

    def pending(self) -> int:
        """Records consumed and not yet committable, over every partition."""
        return sum(len(state.offsets) for state in self._partitions.values())

    def raise_if_failed(self) -> None:
        """Raise `SinkFailed` if a record could neither be delivered nor dead-lettered."""
        if self._failure is not None:
            raise SinkFailed(str(self._failure)) from self._failure

    async def flush(
        self, partitions: Iterable[Partition] | None = None, timeout: float | None = None
    ) -> bool:
        """Wait until the records taken so far (of `partitions`, or all) are finished.

        True when all of them finished within `timeout` seconds.
        """
        chosen = self._partitions if partitions is None else set(partitions)
        tasks = {t for p in chosen if p in self._partitions for t in self._partitions[p].tasks}
        if not tasks:
            return True
        _done, not_done = await asyncio.wait(tasks, timeout=timeout)
        return not not_done

    async def release(self, partitions: Iterable[Partition] | None = None) -> None:
        """Forget `partitions` (or all): cancel their unfinished deliveries and wait for that.

        Their uncommitted records will be consumed again by whoever owns them next.
        """
        chosen = list(self._partitions) if partitions is None else list(partitions)
        tasks: set[asyncio.Task[None]] = set()
        for partition in chosen:
            state = self._partitions.pop(partition, None)
            if state is not None:
                tasks |= state.tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # ---------------------------------------------------------------- per record

    def _spawn(
        self, state: _PartitionState, work: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        state.tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(state, t))
        return task

    def _task_done(self, state: _PartitionState, task: asyncio.Task[None]) -> None:
        state.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    def _finish(self, state: _PartitionState, record: TriggerRecord, outcome: str) -> None:
        state.offsets.done(record.offset)
        self.stats.finished += 1
        if self._metrics is not None:
            self._metrics.deliveries.labels(outcome=outcome).inc()

    async def _deliver(
        self,
        state: _PartitionState,
        record: TriggerRecord,
        trigger_id: str,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # the same key's earlier record goes first
        assert record.value is not None  # read_trigger accepted it
        async with state.slots:
            if self._metrics is not None:
                self._metrics.in_flight.inc()
            try:
                result = await self._delivery.deliver(record.value, trigger_id)
            finally:
                if self._metrics is not None:
                    self._metrics.in_flight.dec()
        if result.delivered:
            self.stats.delivered += 1
            self._finish(state, record, "delivered")
            return
        log.warning(
            "webhook delivery of %s failed after %d attempts (%s)",
            trigger_id, result.attempts, result.error,
        )
        await self._dead_letter(record, DELIVERY_FAILED, self._failure_detail(result))
        self.stats.failed += 1
        self._finish(state, record, "failed")

    async def _dead_letter_malformed(
        self, state: _PartitionState, record: TriggerRecord, malformed: Malformed
    ) -> None:
        await self._dead_letter(record, malformed.reason, malformed.detail)
        self.stats.malformed += 1
        self._finish(state, record, "malformed")

    async def _dead_letter(self, record: TriggerRecord, reason: str, detail: str) -> None:
        value = dead_letter_record(
            reason=reason, detail=detail, original=record.value, topic=record.topic,
            partition=record.partition, offset=record.offset, key=record.key,
        )
        await self._publish_dead_letter(record.key, value)

    def _failure_detail(self, result: DeliveryResult) -> str:
        tries = "attempt" if result.attempts == 1 else "attempts"
        return f"{result.error} after {result.attempts} {tries} to {self._delivery.public_url}"


def _forget_if_last(
    last_by_key: dict[bytes, asyncio.Task[None]], key: bytes, task: asyncio.Task[None]
) -> None:
    if last_by_key.get(key) is task:
        del last_by_key[key]
