"""Records that wait while their partition's population reference waits for other partitions.

A partition that reaches a day whose reference still waits for another partition's snapshot
(scoring.population_reference) *holds*: that record and every later record of the
partition wait here, in arrival order, and are offered again, in order, whenever another
partition published something. Replay and the worker's shell both keep one of these, so a
partition's records are applied in the same order, against the same references, however
far the partitions run apart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from scoring.driver import Driver
    from scoring.engine import Outcome
    from scoring.events import Event
    from scoring.state import UserState

T = TypeVar("T")


class HeldRecords(Generic[T]):
    def __init__(self) -> None:
        self.queues: dict[int, deque[T]] = {}
        self.since: dict[int, int] = {}  # partition -> when it began to wait (caller's clock)

    def __bool__(self) -> bool:
        return bool(self.queues)

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def holds(self, partition: int) -> bool:
        return partition in self.queues

    def hold(self, partition: int, record: T, now: int = 0) -> None:
        """Keep `record` after those the partition already holds."""
        queue = self.queues.get(partition)
        if queue is None:
            queue = self.queues[partition] = deque()
            self.since[partition] = now
        queue.append(record)

    def drop(self, partition: int) -> list[T]:
        """Forget a partition's records (it moved to another worker); returns them."""
        self.since.pop(partition, None)
        return list(self.queues.pop(partition, ()))

    def release(self, offer: Callable[[int, T], bool], now: int = 0) -> int:
        """Offer each partition's first record again, in partition order, until none is
        taken (`offer` returns False for a record that must still wait); returns how many
        were taken. A partition that moved on waits from `now`, if it waits again."""
        taken = 0
        progress = True
        while progress and self.queues:
            progress = False
            for partition in sorted(self.queues):
                queue = self.queues[partition]
                while queue and offer(partition, queue[0]):
                    queue.popleft()
                    taken += 1
                    progress = True
                    self.since[partition] = now
                if not queue:
                    self.drop(partition)
        return taken

    def oldest(self) -> int | None:
        """The partition that has waited longest (by the caller's clock), if any."""
        if not self.since:
            return None
        return min(self.since, key=lambda p: (self.since[p], p))


class AlignedFeed:
    """Events offered to a driver in arrival order, with the partitions that wait held back:
    what `engage replay` and the benchmarks run (the worker's shell does the same with its
    records, streams/holding.py). `on_event` sees each applied event's outcome, `on_sweep`
    each sweep that followed it."""

    def __init__(
        self,
        driver: Driver,
        states: dict[str, UserState],
        on_event: Callable[[Event, Outcome], None],
        on_sweep: Callable[[Outcome], None],
    ) -> None:
        self.driver = driver
        self.states = states
        self.on_event = on_event
        self.on_sweep = on_sweep
        self.held: HeldRecords[Event] = HeldRecords()
        self.waited = 0  # events that had to wait for another partition

    def _offer(self, partition: int, event: Event, force: bool = False) -> bool:
        outcome = self.driver.event(partition, event, self.states, force=force)
        if outcome.status == "held":
            return False
        self.on_event(event, outcome)
        for _partition, _user, swept in self.driver.sweep_advanced(self.states):
            self.on_sweep(swept)
        return True

    def add(self, partition: int, event: Event) -> None:
        held = self.held
        if held.holds(partition) or not self._offer(partition, event):
            held.hold(partition, event)
            self.waited += 1
        elif held:
            held.release(self._offer)

    def finish(self) -> None:
        """The input ended: partitions still waiting for one that has no more events adopt
        what they have (counted as forced), oldest event first."""
        held = self.held
        while held:
            oldest = min(held.queues, key=lambda p: (held.queues[p][0].ts_ms, p))
            self._offer(oldest, held.queues[oldest].popleft(), force=True)
            if not held.queues[oldest]:
                held.drop(oldest)
            held.release(self._offer)
