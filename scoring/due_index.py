"""Per-partition event-time clock and an index of users by due time.

The watermark is the largest event time seen on the partition less the allowed lateness;
it only moves forward. The due index is a heap with lazy deletion, so a sweep touches only
the users whose time has come, never every user.
"""

from __future__ import annotations

import heapq

from scoring.partition_state import PartitionShared


def earliest(a: int | None, b: int | None) -> int | None:
    """The earlier of two due times, either of which may be None (nothing due); folded
    after every event and sweep, so no list is built."""
    if a is None:
        return b
    return a if b is None or a <= b else b


class PartitionClock:
    """The partition's event-time clock, kept in its (persisted) PartitionState."""

    def __init__(self, lateness_ms: int, shared: PartitionShared | None = None) -> None:
        self.lateness_ms = lateness_ms
        self.shared = shared if shared is not None else PartitionShared()
        self._state = self.shared.stored

    @property
    def max_event_ms(self) -> int | None:
        return self._state.max_event_ms

    def observe(self, event_ms: int) -> None:
        state = self._state
        if state.max_event_ms is None or event_ms > state.max_event_ms:
            state.max_event_ms = event_ms

    @property
    def watermark_ms(self) -> int:
        newest = self._state.max_event_ms
        return 0 if newest is None else newest - self.lateness_ms


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, user_id: str, due_ms: int) -> None:
        if self._due.get(user_id) == due_ms:
            return
        self._due[user_id] = due_ms
        heapq.heappush(self._heap, (due_ms, user_id))
        if len(self._heap) > 4 * len(self._due) + 64:
            self._compact()

    @property
    def next_due_ms(self) -> int | None:
        """A lower bound of the earliest due time (stale entries may make it early)."""
        return self._heap[0][0] if self._heap else None

    def cancel(self, user_id: str) -> None:
        self._due.pop(user_id, None)

    def due_ms(self, user_id: str) -> int | None:
        return self._due.get(user_id)

    def pop_due(self, watermark_ms: int) -> list[str]:
        """Users due at or before the watermark, earliest first, each removed once."""
        heap, due = self._heap, self._due
        out: list[str] = []
        while heap and heap[0][0] <= watermark_ms:
            when, user_id = heapq.heappop(heap)
            if due.get(user_id) == when:
                del due[user_id]
                out.append(user_id)
        return out

    def _compact(self) -> None:
        self._heap = [(when, user) for user, when in self._due.items()]
        heapq.heapify(self._heap)
