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

import heapq
import math
from collections.abc import Iterable
from operator import itemgetter

import msgspec

from scoring.population_reference import (
    EMPTY_REFERENCE,
    Opening,
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
    rename={"open_day": "od", "ref_day": "rd", "ref_parts": "rp"},
):
    """Where the partition stands in the population reference."""

    open_day: int | None = None  # the UTC day being accumulated (earlier ones are closed)
    ref_day: int | None = None  # the day whose reference is in force
    ref_parts: dict[int, int] = msgspec.field(default_factory=dict)  # partition -> snapshot day


class PartitionState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=PARTITION_STATE_VERSION,
    rename={"max_event_ms": "e", "offsets": "o", "reference_position": "p", "budget": "b",
            "boards": "lb", "population": "pn"},
):
    """Records written before the shared reference had per-partition DDSketches under `s`
    (the ambassador rule's advocacy percentile); they are ignored when read (the reference
    is rebuilt from the users' states)."""

    max_event_ms: int | None = None  # newest event time applied on the partition
    offsets: dict[str, int] = msgspec.field(default_factory=dict)  # input topic role -> offset
    reference_position: PopulationPosition = msgspec.field(default_factory=PopulationPosition)
    budget: dict[int, list[int]] = msgspec.field(default_factory=dict)  # code -> [day, used]
    # "<period>:<period id>:<measure>" -> [[value, user_id], ...] best first (leaderboards)
    boards: dict[str, list[list[float | str]]] = msgspec.field(default_factory=dict)
    # population health counts (scoring/population_health.py): "users", "dau:<day>", "mau:<month>",
    # "cohort:<first week>:<weeks since>", "buyers", "repeat_buyers", "referrers"
    population: dict[str, int] = msgspec.field(default_factory=dict)


def _board_order(entry: list[float | str]) -> tuple[float, str]:
    value, user = entry
    return (-float(value), str(user))


_VALUE = itemgetter(0)  # of a board entry [value, user]
_USER = itemgetter(1)


class PartitionShared:
    """The live form of a PartitionState: the population histograms, the reference in
    force, and the exchange through which partitions share their snapshots."""

    def __init__(
        self,
        stored: PartitionState | None = None,
        partition: int = 0,
        partitions: int = 1,
        *,
        exchange: SnapshotExchange | None = None,
        window_days: int = 28,
        enabled: bool = True,
    ) -> None:
        self.stored = stored if stored is not None else PartitionState()
        self.partition = partition  # which of `partitions` this is (budget shares)
        self.partitions = partitions
        self.boards_changed = False  # a leaderboard moved since the shell last published
        self._offers: dict[str, dict[str, float]] = {}  # board key -> user -> latest value
        self._sizes: dict[str, int] = {}
        self.enabled = enabled
        self.exchange = exchange if exchange is not None else SnapshotExchange()
        self.population = PartitionPopulation(window_days)
        position = self.stored.reference_position
        self.reference: Reference = EMPTY_REFERENCE
        if enabled and position.ref_day is not None:
            self.reference = self.exchange.restore(position.ref_day, position.ref_parts)

    def advance(self, event_ms: int, lateness_ms: int, force: bool = False) -> bool:
        """Before a record at `event_ms` moves the partition's clock: announce the partition
        with its first event, close the days it leaves behind (publish their snapshot), and
        adopt the reference of the day its watermark enters, once no partition is waited
        for (or at once with `force`). False: the record must wait; nothing was adopted,
        and it is asked again later. Depends only on the partition's own sequence of
        records and on the other partitions' snapshots, never on timing."""
        if not self.enabled:
            return True
        position = self.stored.reference_position
        day = event_ms // MS_PER_DAY
        if position.open_day is None:
            self.exchange.publish(Opening(partition=self.partition, at_ms=event_ms))
            position.open_day = day
        elif day > position.open_day:
            self.exchange.publish(
                self.population.snapshot(self.partition, position.open_day, day - 1, event_ms)
            )
            position.open_day = day
        watermark_day = (event_ms - lateness_ms) // MS_PER_DAY
        if position.ref_day is not None and watermark_day <= position.ref_day:
            return True
        if not force and self.exchange.waiting_for(watermark_day):
            return False
        self.reference = self.exchange.adopt(self.partition, watermark_day, force)
        position.ref_day = watermark_day
        position.ref_parts = dict(self.reference.parts)
        return True

    def waiting_for(self, event_ms: int, lateness_ms: int) -> list[int]:
        """The partitions a record at `event_ms` would wait for."""
        watermark_day = (event_ms - lateness_ms) // MS_PER_DAY
        return self.exchange.waiting_for(watermark_day)

    def rank(self, key: str, user_id: str, value: float, size: int) -> None:
        """Offer `user_id` with `value` to the board `key` (its top `size`). Offers are kept
        until the next snapshot and placed then, the latest per user: within a period values
        only grow, so the boards come out exactly as if each offer had been placed at once,
        for one placement per user and batch instead of one per event. Values are placed
        rounded to 4 decimals; rounding is monotonic, so rounding the latest (largest)
        offer is rounding each and keeping the largest, once per user and batch."""
        self.rank_all(user_id, ((key, value),), size)

    def rank_all(self, user_id: str, offers: Iterable[tuple[str, float]], size: int) -> None:
        """`rank` for several boards at once (a leaderboard event offers to six or so)."""
        all_offers, sizes = self._offers, self._sizes
        for key, value in offers:
            board = all_offers.get(key)
            if board is None:
                board = all_offers[key] = {}
            old = board.get(user_id)
            if old is None or value >= old:
                board[user_id] = value
            sizes[key] = size

    def boards(self) -> dict[str, list[list[float | str]]]:
        """The boards with every offer placed, older periods before newer ones (a board of
        a new period drops those of earlier ones)."""
        for key in sorted(self._offers, key=lambda k: int(k.split(":", 2)[1])):
            self._merge(key, self._offers[key], self._sizes[key])
        self._offers.clear()
        return self.stored.boards

    def _merge(self, key: str, offers: dict[str, float], size: int) -> None:
        """Merge a batch's offers into the board `key`: its top `size` by (-value, user)."""
        boards = self.stored.boards
        board = boards.get(key)
        if board is None:
            kind, pid, measure = key.split(":", 2)
            for old in [k for k in boards
                        if k.startswith(kind + ":") and k.endswith(":" + measure)
                        and int(k.split(":", 2)[1]) < int(pid)]:
                del boards[old]
            board = []
        # values only grow within a period: an offer at or under a full board's last
        # was never on it and cannot enter (nor can its rounding: the last is rounded)
        floor = float(board[-1][0]) if len(board) >= size else -math.inf
        entering = {user: rounded for user, value in offers.items()
                    if value > floor and (rounded := round(value, 4)) > floor}
        if not entering:
            boards.setdefault(key, board)
            return
        merged = [entry for entry in board if entry[1] not in entering]
        merged += [[value, user] for user, value in entering.items()]
        if len(merged) > 4 * size:  # a replay places every user's offer at once
            boards[key] = heapq.nsmallest(size, merged, key=_board_order)
        else:  # by (-value, user) in two stable sorts, without a Python key per entry
            merged.sort(key=_USER)
            merged.sort(key=_VALUE, reverse=True)
            boards[key] = merged[:size]
        self.boards_changed = True

    def budget_share(self, budget: int) -> int:
        """This partition's part of a cluster-wide budget: an even split, the remainder to
        the first partitions, so the parts add up to exactly `budget`."""
        base, extra = divmod(budget, self.partitions)
        return base + (1 if self.partition < extra else 0)

    def spend(self, code: int, day: int, budget: int) -> bool:
        """Take one from the type's share of today's budget; False when it is spent."""
        day_used = self.stored.budget.get(code)
        used = day_used[1] if day_used is not None and day_used[0] == day else 0
        if used >= self.budget_share(budget):
            return False
        self.stored.budget[code] = [day, used + 1]
        return True

    def snapshot(self) -> PartitionState:
        """The state to store now (leaderboard offers placed)."""
        self.boards()
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
