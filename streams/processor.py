"""The scoring shell's logic, free of Faust so agent behaviour can be tested without a broker.

The Faust agent (streams/app.py) hands this a batch of raw records; it validates, routes,
drives the pure engine per partition (clock, watermark, due-index sweeps), and leaves what to
write in an outbox and a set of touched users. Updates to one user within a batch are
coalesced into one state write and one score record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from aiokafka.partitioner import murmur2

from scoring.config import EngageConfig
from scoring.due_index import DueIndex, PartitionClock
from scoring.engine import Outcome, ScoringEngine
from scoring.events import EventRules, InvalidEvent, decode_event
from scoring.state import UserState
from sinks.dead_letters import dead_letter_record
from sinks.metrics import Metrics
from streams.topics import TopicNames

_json_encode = msgspec.json.encode


def partition_for_user(user_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a user_id key."""
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


class StateStore(Protocol):
    """Per-user state keyed by user_id; the Faust table in production, a dict in tests."""

    def load(self, user_id: str) -> UserState | None: ...

    def save(self, user_id: str, partition: int, state: UserState) -> None: ...

    def items(self) -> Iterable[tuple[str, UserState]]: ...


@dataclass
class BatchResult:
    outbox: list[OutRecord] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class ScoringShell:
    """Validates, routes and scores records; one instance per worker."""

    def __init__(
        self,
        config: EngageConfig,
        engine: ScoringEngine,
        store: StateStore,
        names: TopicNames,
        partitions: int,
        metrics: Metrics,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        idle_advance_ms: int = 60_000,
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self.names = names
        self.partitions = partitions
        self.metrics = metrics
        self.wall_clock_ms = wall_clock_ms
        self.idle_advance_ms = idle_advance_ms
        self.rules = EventRules.from_config(config)
        self.clocks: dict[int, PartitionClock] = {}
        self.indexes: dict[int, DueIndex] = {}
        self.last_arrival_wall_ms: dict[int, int] = {}
        self.recent_triggers: dict[str, list[dict[str, Any]]] = {}
        self._indexed: set[int] = set()

    # -- partitions -------------------------------------------------------------------------

    def clock(self, partition: int) -> PartitionClock:
        clock = self.clocks.get(partition)
        if clock is None:
            clock = self.clocks[partition] = PartitionClock(self.engine.lateness_ms)
        return clock

    def index(self, partition: int) -> DueIndex:
        self._ensure_indexed(partition)
        return self.indexes[partition]

    def _ensure_indexed(self, partition: int) -> None:
        """After an assignment, rebuild the partition's due index from its recovered users once.

        This is the only scan of users, made when a partition arrives, never per sweep.
        """
        if partition in self._indexed:
            return
        self._indexed.add(partition)
        index = self.indexes.setdefault(partition, DueIndex())
        for user_id, state in self.store.items():
            if partition_for_user(user_id, self.partitions) != partition:
                continue
            clock = self.clock(partition)
            clock.observe(state.last_event_ms)
            due = self.engine.next_due_ms(state)
            if due is not None:
                index.schedule(user_id, due)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """On revocation: another worker owns these now."""
        for p in partitions:
            self._indexed.discard(p)
            self.indexes.pop(p, None)
            self.clocks.pop(p, None)

    # -- batches ----------------------------------------------------------------------------

    def handle_batch(self, records: list[InputRecord]) -> BatchResult:
        result = BatchResult()
        staged: dict[str, tuple[int, UserState]] = {}
        scores: dict[str, dict[str, Any]] = {}
        advanced: set[int] = set()
        now_ms = self.wall_clock_ms()
        self.metrics.batch_size.observe(len(records))
        for record in records:
            if record.topic == self.names.ticks:
                if self._tick(record.partition, now_ms):
                    advanced.add(record.partition)
                continue
            if self._event(record, now_ms, staged, scores, result):
                advanced.add(record.partition)
        for partition in sorted(advanced):
            self._sweep(partition, staged, scores, result)
        for user_id, (partition, state) in staged.items():
            self.store.save(user_id, partition, state)
        for user_id, score in scores.items():
            result.outbox.append(
                OutRecord(self.names.scores, user_id.encode(), _json_encode(score))
            )
        return result

    def _count(self, result: BatchResult, event_type: str, outcome: str) -> None:
        self.metrics.events_consumed.labels(event_type, outcome).inc()
        result.counts[outcome] = result.counts.get(outcome, 0) + 1

    def _dead_letter(
        self, record: InputRecord, reason: str, detail: str, result: BatchResult, now_ms: int
    ) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        result.outbox.append(
            OutRecord(
                self.names.dlq,
                record.key,
                dead_letter_record(
                    reason=reason, detail=detail, original=record.value, topic=record.topic,
                    partition=record.partition, offset=record.offset, key=record.key,
                    now_ms=now_ms,
                ),
            )
        )

    def _event(
        self,
        record: InputRecord,
        now_ms: int,
        staged: dict[str, tuple[int, UserState]],
        scores: dict[str, dict[str, Any]],
        result: BatchResult,
    ) -> bool:
        """Score one record; True when the partition's watermark moved."""
        try:
            event = decode_event(record.value or b"", now_ms=now_ms, rules=self.rules)
        except InvalidEvent as exc:
            self._count(result, "invalid", "dead_letter")
            self._dead_letter(record, exc.reason, exc.detail, result, now_ms)
            return False
        user_id = event.user_id
        home = partition_for_user(user_id, self.partitions)
        if record.topic != self.names.rekeyed and (
            record.key != user_id.encode() or record.partition != home
        ):
            # Keyed otherwise by its producer: send it to the user's own partition.
            self._count(result, event.type, "rekeyed")
            result.outbox.append(
                OutRecord(self.names.rekeyed, user_id.encode(), record.value or b"", home)
            )
            return False
        partition = record.partition
        self.last_arrival_wall_ms[partition] = now_ms
        clock = self.clock(partition)
        index = self.index(partition)
        before = clock.watermark_ms
        watermark = clock.watermark_ms
        held = staged.get(user_id)
        state = held[1] if held is not None else self.store.load(user_id)
        outcome = self.engine.apply(state, event, watermark)
        self._count(result, event.type, outcome.status)
        if outcome.status == "late":
            self._dead_letter(
                record, "late",
                f"event time {event.ts_ms} is before the partition watermark {watermark}",
                result, now_ms,
            )
            return False
        clock.observe(event.ts_ms)
        if outcome.status == "scored":
            self.metrics.processing_lag.observe(max(0.0, (now_ms - event.ts_ms) / 1000))
        staged[user_id] = (partition, outcome.state)
        self._publish(user_id, outcome, scores, result)
        due = self.engine.next_due_ms(outcome.state)
        if due is not None:
            index.schedule(user_id, due)
        else:
            index.cancel(user_id)
        return clock.watermark_ms > before

    def _tick(self, partition: int, now_ms: int) -> bool:
        """A tick: an idle partition's watermark follows wall-clock time after a timeout."""
        clock = self.clock(partition)
        self.index(partition)
        last = self.last_arrival_wall_ms.get(partition)
        if last is None:
            self.last_arrival_wall_ms[partition] = now_ms
            return False
        idle = now_ms - last
        if idle < self.idle_advance_ms or clock.max_event_ms is None:
            return False
        before = clock.watermark_ms
        clock.observe(clock.max_event_ms + idle - self.idle_advance_ms)
        self.last_arrival_wall_ms[partition] = now_ms - self.idle_advance_ms
        return clock.watermark_ms > before

    def _sweep(
        self,
        partition: int,
        staged: dict[str, tuple[int, UserState]],
        scores: dict[str, dict[str, Any]],
        result: BatchResult,
    ) -> None:
        clock = self.clock(partition)
        index = self.index(partition)
        watermark = clock.watermark_ms
        self.metrics.watermark.labels(str(partition)).set(watermark / 1000)
        for user_id in index.pop_due(watermark):
            held = staged.get(user_id)
            state = held[1] if held is not None else self.store.load(user_id)
            if state is None:
                continue
            self.metrics.sweeps.inc()
            outcome = self.engine.sweep(state, user_id, watermark)
            staged[user_id] = (partition, outcome.state)
            self._publish(user_id, outcome, scores, result)
            due = self.engine.next_due_ms(outcome.state)
            if due is not None and due > watermark:
                index.schedule(user_id, due)

    def _publish(
        self,
        user_id: str,
        outcome: Outcome,
        scores: dict[str, dict[str, Any]],
        result: BatchResult,
    ) -> None:
        if outcome.score is not None:
            scores[user_id] = outcome.score
        key = user_id.encode()
        for trigger in outcome.triggers:
            body = _json_encode(trigger)
            variant = trigger.get("variant", "treatment")
            self.metrics.triggers_emitted.labels(trigger["type"], variant).inc()
            if variant == "treatment":
                result.outbox.append(OutRecord(self.names.trigger(trigger["type"]), key, body))
            result.outbox.append(OutRecord(self.names.audit, key, body))
            recent = self.recent_triggers.setdefault(user_id, [])
            recent.append(trigger)
            del recent[:-10]
        for example in outcome.examples:
            self.metrics.churn_examples.labels(str(example.get("label"))).inc()
            result.outbox.append(
                OutRecord(self.names.churn_examples, key, _json_encode(example))
            )
