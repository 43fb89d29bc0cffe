"""The scoring shell's logic, free of Faust so agent behaviour can be tested without a broker.

The Faust agent (streams/app.py) hands this a batch of raw records; it validates, routes,
drives the pure engine through scoring.driver.Driver (per-partition watermarks, due-index
sweeps) and returns what to write. Updates to one user within a batch are coalesced into
one state write and one score record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from scoring.config import EngageConfig
from scoring.driver import Driver
from scoring.engine import Outcome, ScoringEngine
from scoring.events import EventRules, InvalidEvent, decode_event
from scoring.partitioning import partition_for_user
from scoring.state import UserState
from sinks.dead_letters import dead_letter_record
from sinks.metrics import Metrics
from streams.topics import TopicNames

_json_encode = msgspec.json.encode
RECENT_TRIGGERS = 10


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


class DictStore:
    """A StateStore in a dict: agent tests and benchmarks."""

    def __init__(self) -> None:
        self.states: dict[str, UserState] = {}
        self.saves = 0

    def load(self, user_id: str) -> UserState | None:
        return self.states.get(user_id)

    def save(self, user_id: str, partition: int, state: UserState) -> None:
        self.states[user_id] = state
        self.saves += 1

    def items(self) -> Iterable[tuple[str, UserState]]:
        return list(self.states.items())


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
        self.driver = Driver(engine, store.load)
        self.last_arrival_wall_ms: dict[int, int] = {}
        self.recent_triggers: dict[str, list[dict[str, Any]]] = {}
        self._recovered: set[int] = set()

    # -- partitions -------------------------------------------------------------------------

    def _ensure_recovered(self, partition: int) -> None:
        """After an assignment, rebuild the partition's due index from its users, once.

        This is the only scan of users, made when a partition arrives, never per sweep.
        """
        if partition in self._recovered:
            return
        self._recovered.add(partition)
        users = (
            (user_id, state)
            for user_id, state in self.store.items()
            if partition_for_user(user_id, self.partitions) == partition
        )
        self.driver.recover(partition, users)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """On an assignment change: rebuild from the table when the partition is next seen."""
        for p in partitions:
            self._recovered.discard(p)
            self.driver.forget(p)

    # -- batches ----------------------------------------------------------------------------

    def handle_batch(self, records: list[InputRecord]) -> BatchResult:
        result = BatchResult()
        staged: dict[str, UserState] = {}
        publish: dict[str, Outcome] = {}
        now_ms = self.wall_clock_ms()
        self.metrics.batch_size.observe(len(records))
        for record in records:
            self._ensure_recovered(record.partition)
            if record.topic == self.names.ticks:
                self._tick(record.partition, now_ms)
            else:
                self._event(record, now_ms, staged, publish, result)
        for _partition, user_id, outcome in self.driver.sweep_advanced(staged):
            self.metrics.sweeps.inc()
            self._emit(user_id, outcome, publish, result)
        for partition, clock in self.driver.clocks.items():
            self.metrics.watermark.labels(str(partition)).set(clock.watermark_ms / 1000)
        for user_id, state in staged.items():
            self.store.save(user_id, partition_for_user(user_id, self.partitions), state)
        for user_id, outcome in publish.items():
            assert outcome.state is not None and outcome.publish_ms is not None
            score = self.engine.score_record(
                outcome.state, user_id, outcome.publish_ms, outcome.churn_probability
            )
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
                    reason=reason,
                    detail=detail,
                    original=record.value,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    now_ms=now_ms,
                ),
            )
        )

    def _event(
        self,
        record: InputRecord,
        now_ms: int,
        staged: dict[str, UserState],
        publish: dict[str, Outcome],
        result: BatchResult,
    ) -> None:
        """Validate, route and score one record."""
        try:
            event = decode_event(record.value or b"", now_ms=now_ms, rules=self.rules)
        except InvalidEvent as exc:
            self._count(result, "invalid", "dead_letter")
            self._dead_letter(record, exc.reason, exc.detail, result, now_ms)
            return
        user_id = event.user_id
        partition = partition_for_user(user_id, self.partitions)
        if record.topic != self.names.rekeyed and (
            record.key != user_id.encode() or record.partition != partition
        ):
            # Keyed otherwise by its producer: send it on to the user's own partition.
            self._count(result, event.type, "rekeyed")
            result.outbox.append(
                OutRecord(self.names.rekeyed, user_id.encode(), record.value or b"", partition)
            )
            return
        self.last_arrival_wall_ms[partition] = now_ms
        outcome = self.driver.event(partition, event, staged)
        self._count(result, event.type, outcome.status)
        if outcome.status == "late":
            watermark = self.driver.clock(partition).watermark_ms
            self._dead_letter(
                record,
                "late",
                f"event time {event.ts_ms} is before the partition watermark {watermark} "
                f"(scoring.lateness_seconds={self.engine.lateness_ms / 1000:g})",
                result,
                now_ms,
            )
            return
        if outcome.status == "scored":
            self.metrics.processing_lag.observe(max(0.0, (now_ms - event.ts_ms) / 1000))
        self._emit(user_id, outcome, publish, result)

    def _tick(self, partition: int, now_ms: int) -> None:
        """A tick: an idle partition's event time follows the wall clock after a timeout."""
        clock = self.driver.clock(partition)
        last = self.last_arrival_wall_ms.get(partition)
        if last is None:
            self.last_arrival_wall_ms[partition] = now_ms
            return
        idle = now_ms - last
        newest = clock.max_event_ms if clock.max_event_ms is not None else clock.recovered_ms
        if idle < self.idle_advance_ms or not newest:
            return
        self.driver.advance(partition, newest + idle - self.idle_advance_ms)
        self.last_arrival_wall_ms[partition] = now_ms - self.idle_advance_ms

    def _emit(
        self, user_id: str, outcome: Outcome, publish: dict[str, Outcome], result: BatchResult
    ) -> None:
        if outcome.publish_ms is not None:
            publish[user_id] = outcome
        elif user_id not in publish and outcome.state is not None:
            # duplicates and capped events still answer with the user's current score
            publish[user_id] = Outcome(outcome.status, outcome.state, outcome.state.last_ms)
        key = user_id.encode()
        for trigger in outcome.triggers:
            body = _json_encode(trigger)
            variant = trigger["variant"]
            self.metrics.triggers_emitted.labels(trigger["type"], variant).inc()
            if variant == "treatment":
                result.outbox.append(OutRecord(self.names.trigger(trigger["type"]), key, body))
            result.outbox.append(OutRecord(self.names.audit, key, body))
            recent = self.recent_triggers.setdefault(user_id, [])
            recent.append(trigger)
            del recent[:-RECENT_TRIGGERS]
        for example in outcome.examples:
            self.metrics.churn_examples.labels(str(example["label"])).inc()
            result.outbox.append(OutRecord(self.names.churn_examples, key, _json_encode(example)))
