"""Drives the engine across partitions: per-partition watermarks, due indexes and sweeps.

Shared by the Faust shell (streams/processor.py) and `engage replay`, so both decide
lateness and run silent-user sweeps by the same rules, at the same points of each
partition's record sequence (after every event), whatever the batching.

Input positions: an event may come with where it was read (`source`, `offset`). The user's
state records the position of the last record applied to it; a record at or before that
position was applied before a crash and is skipped (`already_applied`), whatever its event
time. It still moves the partition's clock, exactly as it did the first time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from scoring.due_index import DueIndex, PartitionClock
from scoring.engine import Outcome, ScoringEngine
from scoring.events import Event
from scoring.extensions import Routed
from scoring.partition_state import PartitionState
from scoring.population_reference import SnapshotExchange
from scoring.state import UserState

DIRECT = -1  # `source` of a record read from the user's own input partition


def already_applied(state: UserState, source: int, offset: int) -> bool:
    """True when the record at (`source`, `offset`) was applied to this state before."""
    if source == DIRECT:
        return offset <= state.input_offset
    applied = state.rekeyed_from.get(source)
    return applied is not None and offset <= applied


def record_position(state: UserState, source: int, offset: int) -> None:
    if source == DIRECT:
        state.input_offset = offset
    else:
        state.rekeyed_from[source] = offset


class Driver:
    """`exchange` is where the partitions share their population snapshots: in-process by
    default (replay, tests); a worker passes one fed from the sketches topic."""

    def __init__(
        self,
        engine: ScoringEngine,
        load: Callable[[str], UserState | None],
        partitions: int = 1,
        exchange: SnapshotExchange | None = None,
    ) -> None:
        self.engine = engine
        self.load = load
        self.partitions = partitions
        self.exchange = exchange if exchange is not None else SnapshotExchange()
        self.clocks: dict[int, PartitionClock] = {}
        self.indexes: dict[int, DueIndex] = {}
        self._advanced: set[int] = set()  # partitions whose watermark moved since the last sweep

    def clock(self, partition: int) -> PartitionClock:
        clock = self.clocks.get(partition)
        if clock is None:
            shared = self.engine.partition_shared(
                partition, None, self.exchange, self.partitions
            )
            clock = self.clocks[partition] = PartitionClock(self.engine.lateness_ms, shared)
        return clock

    def index(self, partition: int) -> DueIndex:
        index = self.indexes.get(partition)
        if index is None:
            index = self.indexes[partition] = DueIndex()
        return index

    def recover(
        self,
        partition: int,
        users: Iterable[tuple[str, UserState]],
        stored: PartitionState | None = None,
    ) -> None:
        """Take over a newly assigned partition: its stored clock and shared state, and a due
        index and population histograms rebuilt from its recovered users.

        The stored clock was saved after the users' states of its batch, so it is never ahead
        of them: records replayed after a crash see the clock they saw the first time.
        """
        shared = self.engine.partition_shared(partition, stored, self.exchange, self.partitions)
        self.clocks[partition] = PartitionClock(self.engine.lateness_ms, shared)
        self._advanced.discard(partition)
        index = self.indexes[partition] = DueIndex()
        for user_id, state in users:
            shared.population.restore(state)
            due = self.engine.next_due_ms(state)
            if due is not None:
                index.schedule(user_id, due)

    def forget(self, partition: int) -> None:
        self._advanced.discard(partition)
        self.clocks.pop(partition, None)
        self.indexes.pop(partition, None)

    def _state(self, user_id: str, staged: dict[str, UserState]) -> UserState | None:
        state = staged.get(user_id)
        return state if state is not None else self.load(user_id)

    def event(
        self,
        partition: int,
        event: Event,
        staged: dict[str, UserState],
        source: int = DIRECT,
        offset: int | None = None,
        force: bool = False,
    ) -> Outcome:
        """Apply one event on its partition; staged holds the working states (mutated).

        Outcome `held`: the event would move the partition into a day whose population
        reference still waits for another partition; nothing was applied. The caller keeps
        it (and every later record of the partition) and offers it again once the
        exchange has more snapshots; `force` adopts without waiting."""
        clock = self.clocks.get(partition) or self.clock(partition)
        user_id = event.user_id
        state = staged.get(user_id)
        if state is None:
            state = self.load(user_id)
        if not clock.shared.advance(event.ts_ms, self.engine.lateness_ms, force):
            return Outcome("held", state)
        watermark = clock.watermark_ms
        if offset is not None and state is not None and already_applied(state, source, offset):
            self._observe(partition, clock, event.ts_ms)
            return Outcome("already_applied", state)
        outcome = self.engine.apply(state, event, watermark, clock.shared)
        if outcome.status == "late" or outcome.state is None:
            return outcome
        if offset is not None:
            record_position(outcome.state, source, offset)
        clock.observe(event.ts_ms)
        staged[user_id] = outcome.state
        if clock.watermark_ms > watermark:
            self._advanced.add(partition)
        if outcome.status == "scored":
            self._reschedule(partition, user_id, outcome.state, clock.watermark_ms)
        return outcome

    def receive(
        self,
        partition: int,
        message: Routed,
        staged: dict[str, UserState],
        source: int | None = None,
        position: int | None = None,
    ) -> Outcome:
        """A message for one of the partition's users, applied once: its state records the
        position (`source`, `position`) of the last message applied from each source."""
        user_id = message.to
        state = staged.get(user_id)
        if state is None:
            state = self.load(user_id)
        if state is not None and source is not None and position is not None:
            applied = state.routed_from.get(source)
            if applied is not None and position <= applied:
                return Outcome("already_applied", state)
        clock = self.clock(partition)
        outcome = self.engine.receive(state, message, clock.shared, clock.watermark_ms)
        assert outcome.state is not None
        if source is not None and position is not None:
            outcome.state.routed_from[source] = position
        staged[user_id] = outcome.state
        watermark = clock.watermark_ms
        due = self.engine.next_due_ms(outcome.state)
        if due is not None and due <= watermark:
            # news that came after its time had passed here: the extensions' due work at once,
            # at the watermark (only theirs: a full sweep would judge the user's tier at a
            # time set by the message's arrival, which differs between replay and workers)
            outcome.merge(self.engine.sweep_extensions(outcome.state, user_id, watermark,
                                                       clock.shared))
        self._reschedule(partition, user_id, outcome.state, watermark)
        return outcome

    def _reschedule(self, partition: int, user_id: str, state: UserState, after_ms: int) -> None:
        index = self.index(partition)
        due = self.engine.next_due_ms(state)
        if due is not None and due > after_ms:
            index.schedule(user_id, due)
        elif due is None:
            index.cancel(user_id)
        else:
            index.schedule(user_id, after_ms + 1)

    def _observe(self, partition: int, clock: PartitionClock, event_ms: int) -> None:
        watermark = clock.watermark_ms
        clock.observe(event_ms)
        if clock.watermark_ms > watermark:
            self._advanced.add(partition)

    def advance(self, partition: int, to_event_ms: int, force: bool = False) -> bool:
        """Move an idle partition's clock (ticks: wall-clock time standing in for events);
        False when the day it would enter waits for another partition (not moved)."""
        clock = self.clock(partition)
        if not clock.shared.advance(to_event_ms, self.engine.lateness_ms, force):
            return False
        self._observe(partition, clock, to_event_ms)
        return True

    def waiting_for(self, partition: int, event_ms: int) -> list[int]:
        """The partitions an event at `event_ms` on `partition` would wait for."""
        return self.clock(partition).shared.waiting_for(event_ms, self.engine.lateness_ms)

    def processed_offset(self, partition: int, role: str) -> int:
        """The last offset of the partition's input topic `role` whose effects were all
        stored (-1: none); records up to it are skipped whole after a restart."""
        return self.clock(partition).shared.stored.offsets.get(role, -1)

    def mark_processed(self, partition: int, role: str, offset: int) -> None:
        self.clock(partition).shared.stored.offsets[role] = offset

    def partition_state(self, partition: int) -> PartitionState:
        """What to store for the partition now (its clock, offsets and sketches)."""
        return self.clock(partition).shared.snapshot()

    def sweep_advanced(self, staged: dict[str, UserState]) -> list[tuple[int, str, Outcome]]:
        """Sweep every partition whose watermark moved since the last call: the worker calls
        this once per batch, replay after every event (it is free when nothing moved)."""
        if not self._advanced:
            return []
        swept = [
            (partition, user_id, outcome)
            for partition in sorted(self._advanced)
            for user_id, outcome in self.sweep(partition, staged)
        ]
        self._advanced.clear()
        return swept

    def sweep(
        self, partition: int, staged: dict[str, UserState]
    ) -> list[tuple[str, Outcome]]:
        """Everything due at the partition's watermark, for the users concerned only."""
        clock = self.clock(partition)
        watermark = clock.watermark_ms
        out: list[tuple[str, Outcome]] = []
        index = self.index(partition)
        first = index.next_due_ms
        if first is None or first > watermark:
            return out
        shared = clock.shared
        for user_id in index.pop_due(watermark):
            state = self._state(user_id, staged)
            if state is None:
                continue
            own_due = self.engine.own_due_ms(state) if state.events else None
            if own_due is not None and own_due <= watermark:
                outcome = self.engine.sweep(state, user_id, watermark, shared)
            else:  # only an extension's time came (set by news from another partition): the
                # user's own judgements keep the times their events set
                outcome = self.engine.sweep_extensions(state, user_id, watermark, shared)
            staged[user_id] = state
            out.append((user_id, outcome))
            self._reschedule(partition, user_id, state, watermark)
        return out
