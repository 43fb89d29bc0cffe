"""The population every percentile is read against, shared by all partitions.

Each partition keeps a histogram per measure (the five dimensions and the composite) of its
users active in the last `window_days` (`PartitionPopulation`), each user once, at their
latest value. When a partition first sees an event of a new UTC day it *closes* the days
before: it takes a `Snapshot` of that histogram and publishes it (in-process for replay, on
the `engagement.sketches` topic for workers). When its watermark passes midnight of day D it
*adopts* the reference of day D (`Reference`): the merge of every partition's snapshot as of
the end of day D-1, so every partition reads the same population all day.

Which snapshot of partition q goes into partition p's reference for day D is decided by event
time alone: the newest one of q for a day <= D-1 whose closing event is not later than the
event at which p adopts the reference. Replay and a live worker therefore pick the same
snapshots whenever q's snapshot has reached p's worker by then; when it has not (q lags far
behind p while a backlog is worked off), the adoption is *premature*: p uses q's previous
snapshot, and the exchange counts it when the missing one arrives (docs/scoring.md).

Dimension values are compared after normalising their decay: a dimension with half-life h
at reference time t is placed by log2(x) + t / h, which is the same for every user at any
common moment, so a user's rank does not change while nobody acts, and users last seen at
different times are compared as if evaluated at one time.
"""

from __future__ import annotations

import msgspec

from scoring.config import DIMENSIONS
from scoring.histogram import Ranked, add_counts
from scoring.state import UserState

MEASURES: tuple[str, ...] = (*DIMENSIONS, "composite")
COMPOSITE = len(DIMENSIONS)  # the composite's index in MEASURES and in a user's keys
# A composite entry files the user's combined percentile c (to 1/10,000) with the tier the
# user holds, so a reference knows how many active users hold each tier and where they stand.
RANK_BASE = 1 << 20


def composite_entry(tier_rank: int, composite_key: int) -> int:
    return tier_rank * RANK_BASE + composite_key
SNAPSHOT_VERSION = 1
KEEP_DAYS = 70  # snapshots kept per partition (a lagging partition may still need them)


class Snapshot(
    msgspec.Struct, kw_only=True, tag_field="v", tag=SNAPSHOT_VERSION,
    rename={"partition": "p", "day": "d", "cross_ms": "x", "users": "u", "counts": "c"},
):
    """One partition's population as of the end of `day` (UTC day number)."""

    partition: int
    day: int
    cross_ms: int  # event time of the partition's first event after `day`: when it closed
    users: int  # users in the window (each counted once)
    counts: list[dict[int, int]]  # per measure (MEASURES order): bin key -> users


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return _snapshot_encoder.encode(snapshot)


def decode_snapshot(raw: bytes) -> Snapshot:
    return _snapshot_decoder.decode(raw)


def snapshot_key(partition: int, day: int) -> str:
    return f"{partition}/{day}"


class PartitionPopulation:
    """The live histograms of one partition, filed by each user's last active day (so users
    leave the window by day, without a sweep); rebuilt from the users' states on recovery."""

    def __init__(self, window_days: int) -> None:
        self.window_days = window_days
        self.days: dict[int, list[dict[int, int]]] = {}

    def _bucket(self, day: int) -> list[dict[int, int]]:
        bucket = self.days.get(day)
        if bucket is None:
            bucket = self.days[day] = [{} for _ in MEASURES]
        return bucket

    def _add(self, day: int, keys: list[int], n: int) -> None:
        if day < 0 or not keys:
            return
        if n < 0 and day not in self.days:
            return  # the day left the window and was dropped; nothing to take out
        bucket = self._bucket(day)
        for i, key in enumerate(keys):
            counts = bucket[i]
            left = counts.get(key, 0) + n
            if left > 0:
                counts[key] = left
            else:
                counts.pop(key, None)

    def place(self, state: UserState, day: int, keys: list[int]) -> None:
        """Move the user's entry to (`day`, `keys`), recording it in the state."""
        if day == state.pop_day and keys == state.pop_keys:
            return
        self._add(state.pop_day, state.pop_keys, -1)
        self._add(day, keys, 1)
        state.pop_day = day
        state.pop_keys = keys

    def restore(self, state: UserState) -> None:
        """Recovery: file a stored user's entry again."""
        self._add(state.pop_day, state.pop_keys, 1)

    def snapshot(self, partition: int, day: int, cross_ms: int) -> Snapshot:
        """The users last active in the `window_days` ending with `day`; older days go."""
        first = day + 1 - self.window_days
        for old in [d for d in self.days if d < first]:
            del self.days[old]
        merged: list[dict[int, int]] = [{} for _ in MEASURES]
        for d, bucket in self.days.items():
            if d <= day:
                for i, counts in enumerate(bucket):
                    add_counts(merged[i], counts)
        users = sum(merged[0].values())
        return Snapshot(partition=partition, day=day, cross_ms=cross_ms, users=users,
                        counts=merged)


class Reference:
    """The merged population in force during one day: what percentiles are read against.

    `ranked[d]` holds dimension d; `ranked[COMPOSITE]` the users' combined percentiles c,
    whatever their tier, and `by_tier[r]` the c of the users holding tier rank r."""

    __slots__ = ("by_tier", "day", "lines", "parts", "ranked", "users")

    def __init__(self, day: int | None, parts: dict[int, int], snapshots: list[Snapshot]) -> None:
        self.day = day  # D: built from the ends of days <= D - 1 (None: no reference yet)
        self.parts = parts  # partition -> the day of its snapshot used
        ordered = sorted(snapshots, key=lambda s: s.partition)
        self.ranked = [Ranked.merged(s.counts[i] for s in ordered) for i in range(COMPOSITE)]
        all_tiers: dict[int, int] = {}
        self.by_tier: dict[int, dict[int, int]] = {}
        for snap in ordered:
            for entry, n in snap.counts[COMPOSITE].items():
                rank, key = divmod(entry, RANK_BASE)
                all_tiers[key] = all_tiers.get(key, 0) + n
                tier = self.by_tier.setdefault(rank, {})
                tier[key] = tier.get(key, 0) + n
        self.ranked.append(Ranked(all_tiers))
        self.users = sum(s.users for s in ordered)
        self.lines: list[float] | None = None  # tier lines, computed once (scoring.calibration)


EMPTY_REFERENCE = Reference(None, {}, [])


class SnapshotExchange:
    """Every partition's published snapshots, and the references built from them.

    In replay and tests everything is in-process; a worker feeds it from the sketches topic
    (streams/population_exchange.py) and publishes its own partitions' snapshots there.
    """

    def __init__(self, collect_published: bool = False) -> None:
        self.by_partition: dict[int, dict[int, Snapshot]] = {}
        self.collect_published = collect_published
        self.published: list[Snapshot] = []  # own snapshots not yet sent (worker)
        self.premature = 0  # adoptions that missed a snapshot which arrived later
        self.missing = 0  # snapshots a restored reference named but could not find
        self._adoptions: dict[int, tuple[int, int, dict[int, int]]] = {}
        self._cache: dict[tuple[int, tuple[tuple[int, int], ...]], Reference] = {}

    def publish(self, snapshot: Snapshot) -> None:
        """A snapshot closed by one of this process's partitions."""
        self.receive(snapshot)
        if self.collect_published:
            self.published.append(snapshot)

    def receive(self, snapshot: Snapshot) -> bool:
        """A snapshot from anywhere (the topic echoes our own): True when it is new."""
        days = self.by_partition.setdefault(snapshot.partition, {})
        if snapshot.day in days:
            return False
        days[snapshot.day] = snapshot
        if len(days) > KEEP_DAYS:
            for old in sorted(days)[: len(days) - KEEP_DAYS]:
                del days[old]
        for day, at_ms, parts in self._adoptions.values():
            used = parts.get(snapshot.partition, -1)
            if used < snapshot.day < day and snapshot.cross_ms <= at_ms:
                self.premature += 1
        return True

    def drain_published(self) -> list[Snapshot]:
        out, self.published = self.published, []
        return out

    def adopt(self, partition: int, day: int, at_ms: int) -> Reference:
        """The reference partition `partition` adopts for `day` at event time `at_ms`."""
        parts: dict[int, int] = {}
        for q, days in self.by_partition.items():
            best = -1
            for d, snap in days.items():
                if best < d < day and snap.cross_ms <= at_ms:
                    best = d
            if best >= 0:
                parts[q] = best
        return self.restore(partition, day, at_ms, parts)

    def restore(self, partition: int, day: int, at_ms: int, parts: dict[int, int]) -> Reference:
        """The reference made of exactly these snapshots (what `adopt` chose, or what a
        restarted partition's stored record says it had chosen)."""
        self._adoptions[partition] = (day, at_ms, dict(parts))
        key = (day, tuple(sorted(parts.items())))
        found = self._cache.get(key)
        if found is not None:
            return found
        snapshots = []
        for q, d in parts.items():
            snap = self.by_partition.get(q, {}).get(d)
            if snap is None:
                self.missing += 1
            else:
                snapshots.append(snap)
        reference = Reference(day, dict(parts), snapshots)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = reference
        return reference
