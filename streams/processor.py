"""The scoring shell's logic, free of Faust so agent behaviour can be tested without a broker.

The Faust agent (streams/app.py) hands this a batch of raw records; it validates, routes,
drives the pure engine through scoring.driver.Driver (per-partition watermarks, due-index
sweeps after every event, input positions) and returns what to write, in two parts that the
runtime writes in this order:

1. `outbox`: every output record (scores, triggers, examples, dead letters, re-keyed events);
2. after the outbox is delivered, `states` and then `partitions`: the users' states (each
   recording the input position it reflects) and each partition's clock, processed offsets
   and sketches.

A crash anywhere between replays records whose outputs may have been sent (subscribers see
the same deterministic ids again) but never applies a record twice to a state, and never
records a state whose outputs were not sent. Updates to one user within a batch are
coalesced into one state write and one score record.

No record can stop the worker: whatever fails while decoding, validating, routing or scoring
one record turns that record into a dead letter with the reason, and the batch goes on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from scoring.config import EngageConfig
from scoring.driver import DIRECT, Driver
from scoring.engine import Outcome, ScoringEngine
from scoring.events import EventRules, InvalidEvent, decode_event
from scoring.extensions import Routed
from scoring.partition_state import PartitionState
from scoring.partitioning import partition_for_user
from scoring.population_reference import SnapshotExchange
from scoring.records import Trigger, stamp
from scoring.state import UserState
from scoring.timeutil import format_rfc3339_ms
from sinks.dead_letters import dead_letter_record
from sinks.metrics import Metrics, observe_all
from streams.holding import DEFAULT_MAX_WAIT_MS, PartitionHolds
from streams.topics import TopicNames

log = logging.getLogger("engage.worker")

_json_encode = msgspec.json.encode
RECENT_TRIGGERS = 10
SOURCE_HEADER = "engage-source"  # on re-keyed records: "<partition>:<offset>" they came from

# The roles of the scoring agent's input topics, as recorded in each partition's offsets.
INPUT, REKEYED, TICKS, ROUTED = "input", "rekeyed", "ticks", "routed"
ROLE_CODES = {INPUT: 0, REKEYED: 1, TICKS: 2, ROUTED: 3}
ROUTED_HEADER = "engage-routed-from"  # "<role code>:<partition>:<offset>:<seq>" of its moment
SEQ_LIMIT = 1 << 16  # messages one record may cause (positions: offset * SEQ_LIMIT + seq)
_decode_routed = msgspec.json.Decoder(Routed).decode

Headers = Sequence[tuple[str, bytes]]


@dataclass(slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    handle: Any = None  # the runtime's own record (Faust's event), for acknowledging it


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    headers: Headers | None = None


class StateStore(Protocol):
    """Per-user state keyed by user_id, and one record per partition; the Faust table in
    production, dicts in tests."""

    def load(self, user_id: str) -> UserState | None: ...

    def save(self, user_id: str, partition: int, state: UserState) -> None: ...

    def users(self, partition: int) -> Iterable[tuple[str, UserState]]: ...

    def load_partition(self, partition: int) -> PartitionState | None: ...

    def save_partition(self, partition: int, state: PartitionState) -> None: ...


class DictStore:
    """A StateStore in dicts: agent tests and benchmarks."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.states: dict[str, UserState] = {}
        self.partition_states: dict[int, PartitionState] = {}

    def load(self, user_id: str) -> UserState | None:
        return self.states.get(user_id)

    def save(self, user_id: str, partition: int, state: UserState) -> None:
        self.states[user_id] = state

    def users(self, partition: int) -> Iterable[tuple[str, UserState]]:
        return [
            (u, s) for u, s in self.states.items()
            if partition_for_user(u, self.partitions) == partition
        ]

    def load_partition(self, partition: int) -> PartitionState | None:
        return self.partition_states.get(partition)

    def save_partition(self, partition: int, state: PartitionState) -> None:
        self.partition_states[partition] = state


@dataclass
class BatchResult:
    """What one batch produced: outputs first, then the state that says they were sent."""

    outbox: list[OutRecord] = field(default_factory=list)
    states: dict[str, UserState] = field(default_factory=dict)
    partitions: dict[int, PartitionState] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # (event type, outcome) -> records: the consumed-events metric, moved once per batch
    consumed: dict[tuple[str, str], int] = field(default_factory=dict)
    # records whose partition waits for others' population snapshots (streams/holding.py):
    # keep these unacknowledged; acknowledge those released (held in an earlier batch)
    held: list[InputRecord] = field(default_factory=list)
    released: list[InputRecord] = field(default_factory=list)
    # observed once per batch (sinks.metrics.observe_all): each scored event's age, seconds
    ages: list[float] = field(default_factory=list)
    sweeps: int = 0


class ScoringBatch:
    """A batch being scored: its records in order (`add`), then `finish` for its result."""

    __slots__ = ("now_ms", "publish", "result", "shell", "staged", "touched")

    def __init__(self, shell: ScoringShell, now_ms: int) -> None:
        self.shell = shell
        self.now_ms = now_ms
        self.result = BatchResult()
        self.staged: dict[str, UserState] = {}
        self.publish: dict[str, Outcome] = {}
        self.touched: set[int] = set()

    def add(self, record: InputRecord) -> None:
        self.shell._record(record, self.now_ms, self.staged, self.publish, self.result,
                           self.touched)

    def finish(self) -> BatchResult:
        return self.shell._finish_batch(self)


def parse_source(headers: Headers) -> tuple[int, int] | None:
    """The (partition, offset) a re-keyed record was first read at, from its header."""
    for name, value in headers:
        if name == SOURCE_HEADER:
            partition, _, offset = value.partition(b":")
            try:
                return int(partition), int(offset)
            except ValueError:
                return None
    return None


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
        exchange: SnapshotExchange | None = None,
        max_reference_wait_ms: int = DEFAULT_MAX_WAIT_MS,
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
        self.driver = Driver(engine, store.load, partitions, exchange)
        self.holds = PartitionHolds(metrics.registry, max_reference_wait_ms)
        self.roles = {
            names.interactions: INPUT, names.rekeyed: REKEYED, names.ticks: TICKS,
            names.routed: ROUTED,
        }
        self._moment: tuple[int, int, int] = (0, 0, 0)  # role code, partition, offset
        self._seq = 0  # messages sent by the current record
        self.last_arrival_wall_ms: dict[int, int] = {}
        self.recent_triggers: dict[str, list[Trigger]] = {}
        self.assigned: set[int] = set()

    # -- partitions -------------------------------------------------------------------------

    def _ensure_recovered(self, partition: int) -> None:
        """On a partition's first record after an assignment: take over its stored clock and
        offsets, and rebuild its due index from its users (the only scan of users)."""
        if partition in self.assigned:
            return
        self.assigned.add(partition)
        self.driver.recover(
            partition, self.store.users(partition), self.store.load_partition(partition)
        )

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """On an assignment change: drop what this worker kept of the partitions; they are
        taken over afresh from the table when next seen."""
        for p in partitions:
            self.assigned.discard(p)
            self.holds.forget(p)
            self.driver.forget(p)
            self.last_arrival_wall_ms.pop(p, None)
            with contextlib.suppress(KeyError):
                self.metrics.watermark.remove(str(p))
            self.metrics.population.pop(p, None)
        gone = [
            u for u in self.recent_triggers
            if partition_for_user(u, self.partitions) not in self.assigned
        ]
        for user_id in gone:
            del self.recent_triggers[user_id]

    # -- batches ----------------------------------------------------------------------------

    def handle_batch(self, records: list[InputRecord]) -> BatchResult:
        batch = self.start_batch(len(records))
        for record in records:
            batch.add(record)
        return batch.finish()

    def start_batch(self, size: int) -> ScoringBatch:
        """A batch scored record by record (`add`), for a caller that does other work
        between records; `finish` gives what `handle_batch` gives."""
        self.metrics.batch_size.observe(size)
        return ScoringBatch(self, self.wall_clock_ms())

    def _finish_batch(self, batch: ScoringBatch) -> BatchResult:
        now_ms, staged, publish, result, touched = (
            batch.now_ms, batch.staged, batch.publish, batch.result, batch.touched
        )
        self.holds.release(  # what waited for other partitions' snapshots, in order
            lambda r: self._record(r, now_ms, staged, publish, result, touched), now_ms, result
        )
        for (event_type, status), n in result.consumed.items():
            self.metrics.events_consumed.labels(event_type, status).inc(n)
        observe_all(self.metrics.processing_lag, result.ages)
        if result.sweeps:
            self.metrics.sweeps.inc(result.sweeps)
        for partition in touched:
            clock = self.driver.clock(partition)
            self.metrics.watermark.labels(str(partition)).set(clock.watermark_ms / 1000)
            self.metrics.population[partition] = clock.shared.stored.population
        for user_id, outcome in publish.items():
            self._score_record(user_id, outcome, result)
        result.states = staged
        for p in sorted(touched):
            result.partitions[p] = self.driver.partition_state(p)  # places leaderboard offers
            shared = self.driver.clock(p).shared
            if shared.boards_changed:  # every worker merges every partition's boards
                shared.boards_changed = False
                board = {"partition": p, "boards": shared.stored.boards}
                result.outbox.append(
                    OutRecord(self.names.leaderboards, str(p).encode(), _json_encode(board))
                )
        return result

    def store_batch(self, result: BatchResult) -> None:
        """Write a batch's states, then its partition records: only once its outbox was
        delivered (the runtime's job), so a stored state never claims unsent outputs."""
        for user_id, state in result.states.items():
            self.store.save(user_id, partition_for_user(user_id, self.partitions), state)
        for partition, clock in result.partitions.items():
            self.store.save_partition(partition, clock)

    def _record(
        self,
        record: InputRecord,
        now_ms: int,
        staged: dict[str, UserState],
        publish: dict[str, Outcome],
        result: BatchResult,
        touched: set[int],
    ) -> None:
        partition = record.partition
        role = self.roles.get(record.topic)
        try:
            if role is None:
                raise ValueError(f"record from unexpected topic {record.topic!r}")
            self._ensure_recovered(partition)
            touched.add(partition)
            if record.offset <= self.driver.processed_offset(partition, role):
                self._count(result, "any", "already_processed")  # stored before a restart
                return
            if self.holds.take(record, role == TICKS, now_ms):
                return  # its partition waits for others' snapshots: kept, in order
            self._moment, self._seq = (ROLE_CODES[role], partition, record.offset), 0
            if role == TICKS:
                self._tick(partition, now_ms, staged, publish, result)
            elif role == ROUTED:
                self._routed(record, now_ms, staged, publish, result)
            else:
                self._event(record, role, now_ms, staged, publish, result)
        except Exception as exc:  # a poison record must never stop the worker
            log.exception("record %s[%d]@%d failed", record.topic, partition, record.offset)
            self._count(result, "invalid", "dead_letter")
            self._dead_letter(
                record, "processing_failed", f"{type(exc).__name__}: {exc}", result, now_ms
            )
        if role is not None and partition in self.assigned and not self.holds.waits(record):
            self.driver.mark_processed(partition, role, record.offset)

    def _count(self, result: BatchResult, event_type: str, outcome: str) -> None:
        key = (event_type, outcome)
        result.consumed[key] = result.consumed.get(key, 0) + 1
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
        role: str,
        now_ms: int,
        staged: dict[str, UserState],
        publish: dict[str, Outcome],
        result: BatchResult,
    ) -> None:
        """Validate, route and score one record."""
        try:
            event = decode_event(record.value, now_ms=now_ms, rules=self.rules)
        except InvalidEvent as exc:
            self._count(result, "invalid", "dead_letter")
            self._dead_letter(record, exc.reason, exc.detail, result, now_ms)
            return
        user_id = event.user_id
        partition = partition_for_user(user_id, self.partitions)
        source: int = DIRECT
        offset: int | None = record.offset
        if role == REKEYED:
            # re-keyed by someone else (no header): only event_id dedupe applies
            source, offset = parse_source(record.headers) or (DIRECT, None)
        elif record.key != user_id.encode() or record.partition != partition:
            # Keyed otherwise by its producer: send it on to the user's own partition, with
            # where it came from, so a copy sent twice around a crash is applied once.
            self._count(result, event.type, "rekeyed")
            result.outbox.append(
                OutRecord(
                    self.names.rekeyed, user_id.encode(), record.value or b"", partition,
                    [(SOURCE_HEADER, b"%d:%d" % (record.partition, record.offset))],
                )
            )
            return
        if partition != record.partition:
            raise ValueError(
                f"re-keyed record for partition {partition} arrived on {record.partition}"
            )
        self.last_arrival_wall_ms[partition] = now_ms
        outcome = self.driver.event(partition, event, staged, source, offset,
                                    force=self.holds.forcing or self.holds.max_wait_ms <= 0)
        if outcome.status == "held":
            self.holds.hold(record, now_ms)
            return
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
            result.ages.append(max(0.0, (now_ms - event.ts_ms) / 1000))
        if outcome.status != "already_applied":
            self._emit(user_id, outcome, publish, result, now_ms)
        self._sweep(publish, result, staged, now_ms)

    def _sweep(
        self,
        publish: dict[str, Outcome],
        result: BatchResult,
        staged: dict[str, UserState],
        now_ms: int,
    ) -> None:
        """Sweep right after the record that moved a watermark (as replay does), so what a
        sweep sees never depends on where a batch happened to end."""
        for _partition, user_id, outcome in self.driver.sweep_advanced(staged):
            result.sweeps += 1
            self._emit(user_id, outcome, publish, result, now_ms)

    def _routed(
        self,
        record: InputRecord,
        now_ms: int,
        staged: dict[str, UserState],
        publish: dict[str, Outcome],
        result: BatchResult,
    ) -> None:
        """A message from another user's moment (a referral step...), applied once."""
        message = _decode_routed(record.value or b"")
        if partition_for_user(message.to, self.partitions) != record.partition:
            raise ValueError(f"routed message for {message.to!r} on the wrong partition")
        source = position = None
        for name, value in record.headers:
            if name == ROUTED_HEADER:
                role, part, offset, seq = (int(x) for x in value.split(b":"))
                source, position = role * 4096 + part, offset * SEQ_LIMIT + seq
        outcome = self.driver.receive(record.partition, message, staged, source, position)
        self.metrics.messages.labels(message.kind, outcome.status).inc()
        result.counts[outcome.status] = result.counts.get(outcome.status, 0) + 1
        if outcome.status != "already_applied":
            self._emit(message.to, outcome, publish, result, now_ms)
        self._sweep(publish, result, staged, now_ms)

    def _tick(
        self,
        partition: int,
        now_ms: int,
        staged: dict[str, UserState],
        publish: dict[str, Outcome],
        result: BatchResult,
    ) -> None:
        """A tick: an idle partition's event time follows the wall clock after a timeout."""
        clock = self.driver.clock(partition)
        last = self.last_arrival_wall_ms.get(partition)
        if last is None:
            self.last_arrival_wall_ms[partition] = now_ms
            return
        idle = now_ms - last
        newest = clock.max_event_ms
        if idle < self.idle_advance_ms or not newest:
            return
        if not self.driver.advance(partition, newest + idle - self.idle_advance_ms,
                                   force=self.holds.max_wait_ms <= 0):
            return  # the day it would enter waits for other partitions' snapshots
        self.last_arrival_wall_ms[partition] = now_ms - self.idle_advance_ms
        self._sweep(publish, result, staged, now_ms)

    def _emit(
        self,
        user_id: str,
        outcome: Outcome,
        publish: dict[str, Outcome],
        result: BatchResult,
        now_ms: int,
    ) -> None:
        if outcome.publish_ms is not None:
            publish[user_id] = outcome
        elif (user_id not in publish and outcome.state is not None
              and outcome.status in ("duplicate", "capped")):
            # duplicates and capped events still answer with the user's current score
            publish[user_id] = Outcome(outcome.status, outcome.state, outcome.state.last_ms)
        key = user_id.encode()
        for trigger in outcome.triggers:
            stamp(trigger, now_ms, self.config.triggers.rule(trigger.type).expires_hours)
            body = _json_encode(trigger)
            variant = trigger.variant
            self.metrics.triggers_emitted.labels(trigger.type, variant).inc()
            if variant == "treatment":
                result.outbox.append(OutRecord(self.names.trigger(trigger.type), key, body))
            result.outbox.append(OutRecord(self.names.audit, key, body))
            recent = self.recent_triggers.setdefault(user_id, [])
            recent.append(trigger)
            del recent[:-RECENT_TRIGGERS]
        for example in outcome.examples:
            self.metrics.churn_examples.labels(str(example.label)).inc()
            result.outbox.append(OutRecord(self.names.churn_examples, key, _json_encode(example)))
        for held in outcome.suppressed:
            held.suppressed_at = format_rfc3339_ms(now_ms)
            result.outbox.append(OutRecord(self.names.audit, key, _json_encode(held)))
        role, partition, offset = self._moment
        for message in outcome.routed:
            origin = b"%d:%d:%d:%d" % (role, partition, offset, self._seq)
            self._seq += 1
            result.outbox.append(OutRecord(
                self.names.routed, message.to.encode(), _json_encode(message),
                partition_for_user(message.to, self.partitions), [(ROUTED_HEADER, origin)],
            ))
        for name, labels, amount in outcome.counters:
            self.metrics.count(name, labels, amount)

    def _score_record(self, user_id: str, outcome: Outcome, result: BatchResult) -> None:
        assert outcome.state is not None and outcome.publish_ms is not None
        try:
            shared = self.driver.clock(partition_for_user(user_id, self.partitions)).shared
            score = self.engine.score_record(
                outcome.state, user_id, outcome.publish_ms, outcome.churn_probability, shared
            )
        except Exception:  # one user's record must not cost the batch its outputs
            log.exception("score record for %r failed", user_id)
            self.metrics.internal_errors.labels("score_record").inc()
            return
        result.outbox.append(OutRecord(self.names.scores, user_id.encode(), _json_encode(score)))
