"""The worker's side of event-time alignment: records of partitions that wait.

A partition whose next day's population reference waits for another partition's snapshot
(scoring.population_reference) holds: its records wait here in arrival order, are not
marked processed, and are not acknowledged to Kafka (the runtime keeps their offsets
uncommitted, so a crash hands them to the next owner). After every batch they are offered
again, in order; they go through once the other partitions have published (their own
records, read from the sketches topic, or ticks that move an idle partition's clock).

A wait longer than `max_wait_ms` of wall time (a partition whose owner is gone, or that
stopped receiving events in a backlog) is cut short: the partition adopts what it has,
which is counted in `engage_reference_forced_total` and is the one way the worker's
references can differ from replay's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from scoring.alignment import HeldRecords

if TYPE_CHECKING:
    from streams.processor import BatchResult, InputRecord

DEFAULT_MAX_WAIT_MS = 120_000


class PartitionHolds:
    def __init__(self, registry: CollectorRegistry, max_wait_ms: int = DEFAULT_MAX_WAIT_MS):
        self.held: HeldRecords[InputRecord] = HeldRecords()
        self.max_wait_ms = max_wait_ms
        self.forcing = False  # the record offered now may adopt without waiting
        self._offered: InputRecord | None = None
        self._still_waiting = False
        self._carried: set[int] = set()  # ids of records held across a batch boundary
        self._new: dict[int, InputRecord] = {}  # held in this batch and not released since
        self._released: list[InputRecord] = []
        self._last_held: InputRecord | None = None
        self.waiting = Gauge(
            "engage_records_waiting_for_reference",
            "Input records held while their partition waits for other partitions' "
            "population snapshots.", registry=registry,
        )
        self.waits_started = Counter(
            "engage_reference_waits_total",
            "Times a partition began to wait for other partitions' snapshots.",
            registry=registry,
        )

    def holds(self, partition: int) -> bool:
        return self.held.holds(partition)

    def partitions(self) -> set[int]:
        """The partitions that hold records now."""
        return set(self.held.queues)

    def take(self, record: InputRecord, is_tick: bool, now_ms: int) -> bool:
        """True when `record` must wait behind its partition's held records (queued; a
        tick is dropped: the next one will do)."""
        self._last_held = None
        if record is self._offered or not self.held.holds(record.partition):
            return False
        if not is_tick:
            self.held.hold(record.partition, record, now_ms)
            self._new[id(record)] = record
        return True

    def hold(self, record: InputRecord, now_ms: int) -> None:
        """The driver said `record` must wait: its partition holds from here on."""
        self._last_held = record
        if record is self._offered:
            self._still_waiting = True
            return
        if not self.held.holds(record.partition):
            self.waits_started.inc()
        self.held.hold(record.partition, record, now_ms)
        self._new[id(record)] = record

    def waits(self, record: InputRecord) -> bool:
        """True when `record` was just held (not applied: not to be marked processed)."""
        return self._last_held is record

    def forget(self, partition: int) -> None:
        for record in self.held.drop(partition):
            self._carried.discard(id(record))
            self._new.pop(id(record), None)

    def release(
        self, process: Callable[[InputRecord], None], now_ms: int, result: BatchResult
    ) -> None:
        """Offer the held records again (forcing the one that waited too long), then note in
        `result` which records the runtime must keep unacknowledged and which to ack."""

        def offer(_partition: int, record: InputRecord) -> bool:
            self._offered, self._still_waiting = record, False
            try:
                process(record)
            finally:
                self._offered = None
            if self._still_waiting:
                return False
            if id(record) in self._carried:
                self._carried.discard(id(record))
                self._released.append(record)
            else:  # held and applied within this batch
                self._new.pop(id(record), None)
            return True

        self.held.release(offer, now_ms)
        oldest = self.held.oldest()
        if oldest is not None and now_ms - self.held.since[oldest] >= self.max_wait_ms:
            self.forcing = True
            try:
                if offer(oldest, self.held.queues[oldest][0]):
                    self.held.queues[oldest].popleft()
                    if not self.held.queues[oldest]:
                        self.held.drop(oldest)
            finally:
                self.forcing = False
            self.held.release(offer, now_ms)
        for key, record in self._new.items():  # not a scan of all held: a backlog holds many
            self._carried.add(key)
            result.held.append(record)
        self._new.clear()
        result.released, self._released = self._released, []
        self.waiting.set(len(self.held))
