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
    rename={"max_event_ms": "e", "offsets": "o", "sketches": "s"},
):
    max_event_ms: int | None = None  # newest event time applied on the partition
    offsets: dict[str, int] = msgspec.field(default_factory=dict)  # input topic role -> offset
    sketches: dict[str, SketchState] = msgspec.field(default_factory=dict)


class PartitionShared:
    """The live form of a PartitionState: sketches as DDSketch objects, saved when changed."""

    def __init__(self, stored: PartitionState | None = None) -> None:
        self.stored = stored if stored is not None else PartitionState()
        self._sketches: dict[str, PopulationSketch] = {}
        self._dirty: set[str] = set()

    def sketch(self, name: str) -> PopulationSketch:
        """The named sketch, for reading and adding to (it is saved with the partition)."""
        sketch = self._sketches.get(name)
        if sketch is None:
            sketch = self._sketches[name] = PopulationSketch(self.stored.sketches.get(name))
        self._dirty.add(name)
        return sketch

    def snapshot(self) -> PartitionState:
        """The state to store now (sketches touched since the last snapshot re-encoded)."""
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
