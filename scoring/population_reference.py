"""The population every percentile is read against, shared by all partitions.

Each partition keeps a histogram per measure (the five dimensions and the composite) of its
users active in the last `window_days` (`PartitionPopulation`), each user once, at their
latest value. When a partition first sees an event of a new UTC day it *closes* the days
before: it takes a `Snapshot` of that histogram and publishes it (in-process for replay, on
the `engagement.sketches` topic for workers). When its watermark passes midnight of day D it
*adopts* the reference of day D (`Reference`): the merge of every partition's snapshot as of
the end of day D-1, so every partition reads the same population all day.

Adoption is aligned in event time, which makes it deterministic: a partition adopts day D's
reference only once every partition that had opened before day D (published an `Opening`
with its first event) has closed day D-1. Until then the partition *holds*: its records
wait, in order, while the others catch up (replay queues them in memory; a worker keeps them
unacknowledged, streams/alignment.py). Every partition therefore adopts, for day D, exactly
the same snapshots in replay and in any worker, whatever the batching, the number of workers
or how far one partition runs ahead of another in a backlog. Only a wait cut short (a
partition that stopped receiving events: replay's end of input, a worker's hold timeout) is
*forced*: it adopts what it has, and is counted (docs/scoring.md).

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
from scoring.timeutil import MS_PER_DAY

MEASURES: tuple[str, ...] = (*DIMENSIONS, "composite")
COMPOSITE = len(DIMENSIONS)  # the composite's index in MEASURES and in a user's keys
# A composite entry files the user's combined percentile c (to 1/10,000) with the tier the
# user holds, so a reference knows how many active users hold each tier and where they stand.
RANK_BASE = 1 << 20


def composite_entry(tier_rank: int, composite_key: int) -> int:
    return tier_rank * RANK_BASE + composite_key
KEEP_DAYS = 70  # snapshots kept per partition (a lagging partition may still need them)


class Snapshot(
    msgspec.Struct, kw_only=True, tag_field="k", tag="snapshot",
    rename={"partition": "p", "first_day": "f", "day": "d", "closed_ms": "x", "users": "u",
            "counts": "c"},
):
    """One partition's population at the end of each day from `first_day` to `day` (UTC
    day numbers: the partition had no event in between), windowed at `day`."""

    partition: int
    first_day: int
    day: int
    closed_ms: int  # event time of the partition's first event after `day`
    users: int  # users in the window (each counted once)
    counts: list[dict[int, int]]  # per measure (MEASURES order): bin key -> users


class Opening(msgspec.Struct, kw_only=True, tag_field="k", tag="opening",
              rename={"partition": "p", "at_ms": "t"}):
    """A partition's first event: from the next day on, references wait for its snapshots."""

    partition: int
    at_ms: int


Shared = Snapshot | Opening
_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Shared] = msgspec.msgpack.Decoder(Shared)


def encode_shared(item: Shared) -> bytes:
    return _encoder.encode(item)


def decode_shared(raw: bytes) -> Shared:
    return _decoder.decode(raw)


def shared_key(item: Shared) -> str:
    """The record key on the sketches topic: one per partition and day (or opening)."""
    if isinstance(item, Opening):
        return f"{item.partition}/opening"
    return f"{item.partition}/{item.day}"


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
        old = state.pop_keys
        if day == state.pop_day and len(keys) == len(old) and day in self.days:
            # (equal lengths checked above; a bucket also holds the composite keys may lack)
            for was, now, counts in zip(old, keys, self.days[day], strict=False):
                if was != now:  # usually one or two measures move
                    left = counts.get(was, 0) - 1
                    if left > 0:
                        counts[was] = left
                    else:
                        counts.pop(was, None)
                    counts[now] = counts.get(now, 0) + 1
        else:
            self._add(state.pop_day, old, -1)
            self._add(day, keys, 1)
            state.pop_day = day
        state.pop_keys = keys

    def restore(self, state: UserState) -> None:
        """Recovery: file a stored user's entry again."""
        self._add(state.pop_day, state.pop_keys, 1)

    def snapshot(self, partition: int, first_day: int, day: int, closed_ms: int) -> Snapshot:
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
        return Snapshot(partition=partition, first_day=first_day, day=day, closed_ms=closed_ms,
                        users=users, counts=merged)


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
    """Every partition's openings and snapshots, and the references built from them.

    In replay and tests everything is in-process; a worker feeds it from the sketches topic
    (streams/population_exchange.py) and publishes its own partitions' items there.
    """

    def __init__(self, collect_published: bool = False) -> None:
        self.opened: dict[int, int] = {}  # partition -> event time of its first event
        self.by_partition: dict[int, dict[int, Snapshot]] = {}  # partition -> day -> snapshot
        self.closed: dict[int, int] = {}  # partition -> the latest day it closed
        self.collect_published = collect_published
        self.published: list[Shared] = []  # own items not yet sent (worker)
        self.forced = 0  # adoptions that could not wait for every partition
        self.stalled: set[int] = set()  # not waited for until they publish again
        self.missing = 0  # snapshots a restored reference named but could not find
        self._cache: dict[tuple[int, tuple[tuple[int, int], ...]], Reference] = {}

    def publish(self, item: Shared) -> None:
        """An opening or snapshot of one of this process's partitions."""
        self.receive(item)
        if self.collect_published:
            self.published.append(item)

    def receive(self, item: Shared) -> bool:
        """An item from anywhere (the topic echoes our own): True when it is new."""
        if isinstance(item, Opening):
            known = self.opened.get(item.partition)
            self.opened[item.partition] = item.at_ms if known is None else min(known, item.at_ms)
            return known is None
        days = self.by_partition.setdefault(item.partition, {})
        if item.day in days:
            return False
        days[item.day] = item
        self.stalled.discard(item.partition)  # it moves again: wait for it again
        self.closed[item.partition] = max(self.closed.get(item.partition, -1), item.day)
        if len(days) > KEEP_DAYS:
            for old in sorted(days)[: len(days) - KEEP_DAYS]:
                del days[old]
        return True

    def drain_published(self) -> list[Shared]:
        out, self.published = self.published, []
        return out

    def waiting_for(self, day: int) -> list[int]:
        """The partitions a reference for `day` still waits for: opened before the day,
        and not yet closed day - 1."""
        start = day * MS_PER_DAY
        return sorted(q for q, at in self.opened.items()
                      if at < start and self.closed.get(q, -1) < day - 1
                      and q not in self.stalled)

    def adopt(self, partition: int, day: int, force: bool = False) -> Reference:
        """The reference of `day`: each partition's snapshot covering day - 1 (else its
        newest before), in partition order. `force`: without waiting for every partition
        (counted in `forced`); the partitions not waited for are stalled: no reference
        waits for them again until they publish a snapshot."""
        if force:
            late = self.waiting_for(day)
            if late:
                self.forced += 1
                self.stalled.update(late)
        parts: dict[int, int] = {}
        last = day - 1
        for q, days in self.by_partition.items():
            covering = [d for d, snap in days.items() if snap.first_day <= last <= d]
            earlier = [d for d in days if d < last]
            if covering:
                parts[q] = min(covering)
            elif earlier:
                parts[q] = max(earlier)
        return self.restore(day, parts)

    def restore(self, day: int, parts: dict[int, int]) -> Reference:
        """The reference made of exactly these snapshots (what `adopt` chose, or what a
        restarted partition's stored record says it had chosen)."""
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
