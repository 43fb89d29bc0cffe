"""Drives the engine across partitions: per-partition watermarks, due indexes and sweeps.

Shared by the Faust shell (streams/processor.py) and `engage replay`, so both decide
lateness and run silent-user sweeps by the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from scoring.due_index import DueIndex, PartitionClock
from scoring.engine import Outcome, ScoringEngine
from scoring.events import Event
from scoring.state import UserState


class Driver:
    def __init__(
        self, engine: ScoringEngine, load: Callable[[str], UserState | None]
    ) -> None:
        self.engine = engine
        self.load = load
        self.clocks: dict[int, PartitionClock] = {}
        self.indexes: dict[int, DueIndex] = {}
        self._advanced: set[int] = set()  # partitions whose watermark moved since the last sweep

    def clock(self, partition: int) -> PartitionClock:
        clock = self.clocks.get(partition)
        if clock is None:
            clock = self.clocks[partition] = PartitionClock(self.engine.lateness_ms)
        return clock

    def index(self, partition: int) -> DueIndex:
        index = self.indexes.get(partition)
        if index is None:
            index = self.indexes[partition] = DueIndex()
        return index

    def recover(self, partition: int, users: Iterable[tuple[str, UserState]]) -> None:
        """Rebuild a newly assigned partition's due index from its recovered users.

        The clock is *not* set from the users' latest events: after a crash the records since
        the last committed offset are replayed, and some of them may be older than states that
        reached the changelog first. They must count (or dedupe), not turn `late`. The newest
        recovered time is kept only so that an idle partition's ticks can move on from it.
        """
        clock, index = self.clock(partition), self.index(partition)
        newest = clock.recovered_ms
        for user_id, state in users:
            newest = max(newest, state.last_ms)
            due = self.engine.next_due_ms(state)
            if due is not None:
                index.schedule(user_id, due)
        clock.recovered_ms = newest

    def forget(self, partition: int) -> None:
        self._advanced.discard(partition)
        self.clocks.pop(partition, None)
        self.indexes.pop(partition, None)

    def _state(self, user_id: str, staged: dict[str, UserState]) -> UserState | None:
        state = staged.get(user_id)
        return state if state is not None else self.load(user_id)

    def event(self, partition: int, event: Event, staged: dict[str, UserState]) -> Outcome:
        """Apply one event on its partition; staged holds the working states (mutated)."""
        clock = self.clocks.get(partition) or self.clock(partition)
        user_id = event.user_id
        state = staged.get(user_id)
        if state is None:
            state = self.load(user_id)
        watermark = clock.watermark_ms
        outcome = self.engine.apply(state, event, watermark)
        if outcome.status == "late" or outcome.state is None:
            return outcome
        clock.observe(event.ts_ms)
        staged[user_id] = outcome.state
        if clock.watermark_ms > watermark:
            self._advanced.add(partition)
        if outcome.status == "scored":
            self._reschedule(partition, user_id, outcome.state, clock.watermark_ms)
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

    def advance(self, partition: int, to_event_ms: int) -> None:
        """Move an idle partition's clock (ticks: wall-clock time standing in for events)."""
        clock = self.clock(partition)
        watermark = clock.watermark_ms
        clock.observe(to_event_ms)
        if clock.watermark_ms > watermark:
            self._advanced.add(partition)

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
        watermark = self.clock(partition).watermark_ms
        out: list[tuple[str, Outcome]] = []
        index = self.index(partition)
        first = index.next_due_ms
        if first is None or first > watermark:
            return out
        for user_id in index.pop_due(watermark):
            state = self._state(user_id, staged)
            if state is None:
                continue
            outcome = self.engine.sweep(state, user_id, watermark)
            staged[user_id] = state
            out.append((user_id, outcome))
            self._reschedule(partition, user_id, state, watermark)
        return out
