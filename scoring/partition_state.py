"""What one input partition shares across its users, persisted beside their state.

The event-time clock (the newest event time seen, from which the watermark follows), how far
each input topic of the partition has been fully processed, and the population sketches
that rules read (e.g. the advocacy percentile of the ambassador rule). The shell stores it
in the user table under a reserved key, on the partition's own changelog partition, after
the users' states of the same batch: after a crash it is never ahead of them, and the
records it says were processed are skipped whole.
"""

from __future__ import annotations

import math

import msgspec
from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto

PARTITION_STATE_VERSION = 1
SKETCH_RELATIVE_ACCURACY = 0.01

# A key no user_id can take (user ids may not hold control characters: scoring.events).
PARTITION_KEY_PREFIX = "\x00partition/"


def partition_key(partition: int) -> str:
    return f"{PARTITION_KEY_PREFIX}{partition}"


def is_partition_key(key: str) -> bool:
    return key.startswith(PARTITION_KEY_PREFIX)


class SketchState(msgspec.Struct, kw_only=True, rename={"proto": "p", "low": "lo", "high": "hi"}):
    """A sketch as stored: DDSketch's own protobuf form, and the exact extremes it drops."""

    proto: bytes
    low: float
    high: float


class PopulationSketch:
    """Quantiles of a population's values within 1 % (DDSketch, mergeable), clamped to the
    exact smallest and largest value seen, so a population of equal values has that value
    as every quantile."""

    def __init__(self, stored: SketchState | None = None) -> None:
        if stored is None:
            self.sketch = DDSketch(SKETCH_RELATIVE_ACCURACY)
            self.low, self.high = math.inf, -math.inf
        else:
            message = DDSketchMessage()
            message.ParseFromString(stored.proto)
            self.sketch = DDSketchProto.from_proto(message)
            self.low, self.high = stored.low, stored.high

    @property
    def count(self) -> float:
        return float(self.sketch.count)

    def add(self, value: float) -> None:
        self.sketch.add(value)
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def quantile(self, rank: float) -> float | None:
        if not self.sketch.count:
            return None
        value = self.sketch.get_quantile_value(rank)
        return None if value is None else min(max(value, self.low), self.high)

    def stored(self) -> SketchState:
        proto = DDSketchProto.to_proto(self.sketch).SerializeToString()
        return SketchState(proto=proto, low=self.low, high=self.high)


class PartitionState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=PARTITION_STATE_VERSION,
    rename={"max_event_ms": "e", "offsets": "o", "sketches": "s", "budget": "b",
            "boards": "lb", "population": "pn"},
):
    max_event_ms: int | None = None  # newest event time applied on the partition
    offsets: dict[str, int] = msgspec.field(default_factory=dict)  # input topic role -> offset
    sketches: dict[str, SketchState] = msgspec.field(default_factory=dict)
    budget: dict[int, list[int]] = msgspec.field(default_factory=dict)  # code -> [day, used]
    # "<period>:<period id>:<measure>" -> [[value, user_id], ...] best first (leaderboards)
    boards: dict[str, list[list[float | str]]] = msgspec.field(default_factory=dict)
    # population health counts (scoring/population_health.py): "users", "dau:<day>", "mau:<month>",
    # "cohort:<first week>:<weeks since>", "buyers", "repeat_buyers", "referrers"
    population: dict[str, int] = msgspec.field(default_factory=dict)


def _board_order(entry: list[float | str]) -> tuple[float, str]:
    value, user = entry
    return (-float(value), str(user))


class PartitionShared:
    """The live form of a PartitionState: sketches as DDSketch objects, saved when changed."""

    def __init__(
        self, stored: PartitionState | None = None, partition: int = 0, partitions: int = 1
    ) -> None:
        self.stored = stored if stored is not None else PartitionState()
        self.partition = partition  # which of `partitions` this is (budget shares)
        self.partitions = partitions
        self.boards_changed = False  # a leaderboard moved since the shell last published
        self._sketches: dict[str, PopulationSketch] = {}
        self._dirty: set[str] = set()
        self._offers: dict[str, dict[str, float]] = {}  # board key -> user -> latest value
        self._sizes: dict[str, int] = {}

    def sketch(self, name: str) -> PopulationSketch:
        """The named sketch, for reading and adding to (it is saved with the partition)."""
        sketch = self._sketches.get(name)
        if sketch is None:
            sketch = self._sketches[name] = PopulationSketch(self.stored.sketches.get(name))
        self._dirty.add(name)
        return sketch

    def rank(self, key: str, user_id: str, value: float, size: int) -> None:
        """Offer `user_id` with `value` to the board `key` (its top `size`). Offers are kept
        until the next snapshot and placed then, the latest per user: within a period values
        only grow, so the boards come out exactly as if each offer had been placed at once,
        for one placement per user and batch instead of one per event."""
        offers = self._offers.setdefault(key, {})
        offers[user_id] = max(value, offers.get(user_id, value))
        self._sizes[key] = size

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
        # was never on it and cannot enter
        floor = float(board[-1][0]) if len(board) >= size else -math.inf
        entering = {user: value for user, value in offers.items() if value > floor}
        if not entering:
            boards.setdefault(key, board)
            return
        merged = [entry for entry in board if entry[1] not in entering]
        merged += [[value, user] for user, value in entering.items()]
        merged.sort(key=_board_order)
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
        """The state to store now (sketches touched since the last snapshot re-encoded,
        leaderboard offers placed)."""
        self.boards()
        for name in self._dirty:
            self.stored.sketches[name] = self._sketches[name].stored()
        self._dirty.clear()
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
