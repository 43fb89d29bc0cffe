"""What one input partition shares across its users, persisted beside their state.

The event-time clock (the newest event time seen, from which the watermark follows), how far
each input topic of the partition has been fully processed, and where the partition stands
in the shared population reference (the day it accumulates, the reference it adopted and
the snapshots that reference was made of). The shell stores it in the user table under a
reserved key, on the partition's own changelog partition, after the users' states of the
same batch: after a crash it is never ahead of them, and the records it says were processed
are skipped whole.

The partition's live population histograms are not stored: they are rebuilt from the
users' states (each records its own entry) when a worker takes the partition over.
"""

from __future__ import annotations

import msgspec

from scoring.population_reference import (
    EMPTY_REFERENCE,
    PartitionPopulation,
    Reference,
    SnapshotExchange,
)
from scoring.timeutil import MS_PER_DAY

PARTITION_STATE_VERSION = 1

# A key no user_id can take (user ids may not hold control characters: scoring.events).
PARTITION_KEY_PREFIX = "\x00partition/"


def partition_key(partition: int) -> str:
    return f"{PARTITION_KEY_PREFIX}{partition}"


def is_partition_key(key: str) -> bool:
    return key.startswith(PARTITION_KEY_PREFIX)


class PopulationPosition(
    msgspec.Struct, kw_only=True, omit_defaults=True,
    rename={"open_day": "od", "ref_day": "rd", "ref_parts": "rp", "adopted_ms": "am"},
):
    """Where the partition stands in the population reference."""

    open_day: int | None = None  # the UTC day being accumulated (earlier ones are closed)
    ref_day: int | None = None  # the day whose reference is in force
    ref_parts: dict[int, int] = msgspec.field(default_factory=dict)  # partition -> snapshot day
    adopted_ms: int = 0  # event time at which it was adopted


class PartitionState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=PARTITION_STATE_VERSION,
    rename={"max_event_ms": "e", "offsets": "o", "population": "p"},
):
    """Records written before the shared reference had a per-partition DDSketch under `s`;
    it is ignored when read (the reference is rebuilt from the users' states)."""

    max_event_ms: int | None = None  # newest event time applied on the partition
    offsets: dict[str, int] = msgspec.field(default_factory=dict)  # input topic role -> offset
    population: PopulationPosition = msgspec.field(default_factory=PopulationPosition)


class PartitionShared:
    """The live form of a PartitionState: the population histograms, the reference in
    force, and the exchange through which partitions share their snapshots."""

    def __init__(
        self,
        stored: PartitionState | None = None,
        *,
        partition: int = 0,
        exchange: SnapshotExchange | None = None,
        window_days: int = 28,
        enabled: bool = True,
    ) -> None:
        self.stored = stored if stored is not None else PartitionState()
        self.partition = partition
        self.enabled = enabled
        self.exchange = exchange if exchange is not None else SnapshotExchange()
        self.population = PartitionPopulation(window_days)
        position = self.stored.population
        self.reference: Reference = EMPTY_REFERENCE
        if enabled and position.ref_day is not None:
            self.reference = self.exchange.restore(
                partition, position.ref_day, position.adopted_ms, position.ref_parts
            )

    def prepare(self, event_ms: int, lateness_ms: int) -> None:
        """Before a record at `event_ms` moves the partition's clock: close the days it
        leaves behind (publish their snapshot) and adopt the reference of the day its
        watermark enters. Both depend only on the partition's own sequence of records."""
        if not self.enabled:
            return
        position = self.stored.population
        day = event_ms // MS_PER_DAY
        if position.open_day is None:
            position.open_day = day
        elif day > position.open_day:
            self.exchange.publish(self.population.snapshot(self.partition, day - 1, event_ms))
            position.open_day = day
        watermark_day = (event_ms - lateness_ms) // MS_PER_DAY
        if position.ref_day is None or watermark_day > position.ref_day:
            self.reference = self.exchange.adopt(self.partition, watermark_day, event_ms)
            position.ref_day = watermark_day
            position.ref_parts = dict(self.reference.parts)
            position.adopted_ms = event_ms

    def snapshot(self) -> PartitionState:
        """The state to store now."""
        return self.stored


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PartitionState)


class PartitionStateVersionError(ValueError):
    """A partition record this release cannot read."""


def encode_partition_state(state: PartitionState) -> bytes:
    return _encoder.encode(state)


def decode_partition_state(raw: bytes) -> PartitionState:
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise PartitionStateVersionError(
            f"unreadable partition state (written by a newer release?): {exc}"
        ) from None
