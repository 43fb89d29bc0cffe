"""The population reference across workers: snapshots out to, and in from, the sketches topic.

Each worker's partitions close their days in the scoring core (scoring.population_reference)
and leave the snapshots in an in-process `SnapshotExchange`. This module is the worker's
side of it:

- `outbox()`: the openings and snapshots of a batch, as records for `engagement.sketches`
  (key `<partition>/<day>`, `<partition>/opening`). They travel in the batch's outbox, so
  they are acknowledged before the partition records saying those days were closed are
  stored (a crash closes the same day again with the same content; the topic's compaction
  keeps one copy).
- `read()`: every worker reads the whole topic from the beginning with its own group-less
  consumer and hands every item to its exchange, its own included (after a restart they
  come back from here).
- `wait_caught_up()`: a worker scores its first batch only once it has read the topic up
  to where it ended when the worker started (bounded), so it knows every partition that
  opened and every day they closed before it decides what its partitions wait for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from scoring.population_reference import (
    SnapshotExchange,
    decode_shared,
    encode_shared,
    shared_key,
)
from scoring.timeutil import MS_PER_DAY
from streams.processor import OutRecord
from streams.topics import TopicNames

if TYPE_CHECKING:
    from scoring.driver import Driver
    from streams.app import EngageWorker

log = logging.getLogger("engage.population")

CATCH_UP_TIMEOUT_S = 30.0


class PopulationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.snapshots = Counter(
            "engage_population_snapshots_total",
            "Population openings and snapshots: published by this worker's partitions (own) "
            "or read from the sketches topic (read).", ["origin"], registry=registry,
        )
        self.forced = Counter(
            "engage_reference_forced_total",
            "Days' references adopted without waiting for every partition (a wait cut short): "
            "the only way a worker's references can differ from replay's.",
            registry=registry,
        )
        self.reference_users = Gauge(
            "engage_reference_users", "Active users in the reference in force, by partition.",
            ["partition"], registry=registry,
        )
        self.reference_day = Gauge(
            "engage_reference_day_seconds",
            "Start of the UTC day whose reference is in force (epoch seconds), by partition.",
            ["partition"], registry=registry,
        )


class PopulationExchange:
    """A worker's SnapshotExchange, wired to the sketches topic."""

    def __init__(self, broker: str, names: TopicNames, registry: CollectorRegistry) -> None:
        self.broker = broker
        self.names = names
        self.exchange = SnapshotExchange(collect_published=True)
        self.metrics = PopulationMetrics(registry)
        self.caught_up = asyncio.Event()
        self._forced_seen = 0

    # -- out --------------------------------------------------------------------------------

    def outbox(self, driver: Driver) -> list[OutRecord]:
        """The openings and snapshots published since the last call, as records to send with
        the batch; updates the reference gauges of the partitions the worker drives."""
        records = []
        for item in self.exchange.drain_published():
            self.metrics.snapshots.labels("own").inc()
            key = shared_key(item).encode()
            records.append(OutRecord(self.names.sketches, key, encode_shared(item)))
        self._count_forced()
        for partition, clock in driver.clocks.items():
            reference = clock.shared.reference
            self.metrics.reference_users.labels(str(partition)).set(reference.users)
            if reference.day is not None:
                self.metrics.reference_day.labels(str(partition)).set(
                    reference.day * MS_PER_DAY / 1000
                )
        return records

    def _count_forced(self) -> None:
        new = self.exchange.forced - self._forced_seen
        if new > 0:
            log.warning("%d day reference(s) adopted without waiting for every partition "
                        "(stalled: %s)", new, sorted(self.exchange.stalled))
            self.metrics.forced.inc(new)
            self._forced_seen = self.exchange.forced

    # -- in ---------------------------------------------------------------------------------

    async def wait_caught_up(self, timeout_s: float = CATCH_UP_TIMEOUT_S) -> None:
        if self.caught_up.is_set():
            return
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout_s)
        except TimeoutError:
            log.error("the sketches topic was not read within %.0f s; scoring goes on "
                      "(references adopted meanwhile may miss snapshots)", timeout_s)
            self.caught_up.set()

    async def read(self) -> None:
        """Read the sketches topic from its beginning, for as long as the worker runs."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.names.sketches, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        self._receive(message.value)
                if not self.caught_up.is_set() and await consumer.position(tp) >= end:
                    self.caught_up.set()
        finally:
            await consumer.stop()

    def _receive(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            item = decode_shared(raw)
        except Exception as exc:  # a foreign or newer record must not stop the reader
            log.error("unreadable population snapshot skipped: %s", exc)
            return
        if self.exchange.receive(item):
            self.metrics.snapshots.labels("read").inc()

    def register(self, worker: EngageWorker) -> None:
        @worker.app.task
        async def read_sketches() -> None:
            while True:
                try:
                    await self.read()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the broker may be restarting; keep trying
                    log.exception("sketches reader failed; retrying in 2s")
                    await asyncio.sleep(2)
