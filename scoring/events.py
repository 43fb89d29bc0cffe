"""The interaction event contract v1: strict, fast decoding into an `Event`.

Every rejection is an `InvalidEvent` with a stable `reason` code; the shell dead-letters it
with the original bytes. Reason codes: null_value, oversized, malformed_json, not_an_object,
missing_field, duplicate_key, wrong_type, invalid_field, unknown_type, bad_timestamp,
future_timestamp.

Rules beyond the JSON Schema's types (docs/events.md): identifiers and `channel` hold no
control characters (they end up in logs and HTTP paths); `properties.amount` is finite and
not negative (money back is a `refund` event); a contract field given twice in one object is
refused rather than silently taking the last value; nesting deeper than the decoder allows
is malformed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import msgspec

from scoring.config import EngageConfig
from scoring.timeutil import format_rfc3339_ms

MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: the default events.min_timestamp

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Properties(msgspec.Struct, frozen=True, kw_only=True):
    """Known optional properties; unknown ones are accepted and ignored."""

    amount: float | None = None
    quantity: int | None = None
    content_id: str | None = None
    target_user_id: str | None = None
    rating: int | None = None  # within scoring.satisfaction's scale (1-5 by default)


class WireEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_id: NonEmpty
    user_id: NonEmpty
    type: NonEmpty
    ts: AwareDatetime | int
    channel: str | None = None
    properties: Properties | None = None


class Event(msgspec.Struct, frozen=True):
    """A validated event; `ts_ms` is epoch milliseconds of event time."""

    event_id: str
    user_id: str
    type: str
    ts_ms: int
    amount: float = 0.0
    channel: str | None = None
    properties: Properties | None = None


class InvalidEvent(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EventRules(msgspec.Struct, frozen=True):
    """The parts of the config that validation needs, precomputed."""

    known_types: frozenset[str]
    max_bytes: int = 16_384
    max_future_ms: int = 300_000
    rating_min: int = 1
    rating_max: int = 5
    min_ts_ms: int = MIN_TS_MS  # events.min_timestamp: earlier is a unit mistake

    @classmethod
    def from_config(cls, config: EngageConfig) -> EventRules:
        return cls(
            known_types=frozenset(config.event_types),
            max_bytes=config.events.max_bytes,
            max_future_ms=int(config.events.max_future_seconds * 1000),
            rating_min=config.scoring.satisfaction.rating_min,
            rating_max=config.scoring.satisfaction.rating_max,
            min_ts_ms=config.events.min_timestamp_ms,
        )


_decoder = msgspec.json.Decoder(WireEvent)

# The quoted names of the contract's fields: a cheap pre-check for duplicate keys (a name
# seen twice in the bytes), confirmed by a full parse only then.
_FIELD_NAMES = tuple(
    f'"{name}"'.encode()
    for name in (*WireEvent.__struct_fields__, *Properties.__struct_fields__)
)


def _duplicate_key(raw: bytes) -> str | None:
    """A contract field that appears twice in one JSON object of `raw`, if any."""
    if max(map(raw.count, _FIELD_NAMES)) < 2:  # no name twice: no Python frame per name
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


def _printable(wire: WireEvent) -> bool:
    """No control characters in the identifiers and channel (spelled out: no generator per
    event)."""
    channel = wire.channel
    return (wire.event_id.isprintable() and wire.user_id.isprintable()
            and wire.type.isprintable() and (channel is None or channel.isprintable()))


def _reason_of(message: str) -> str:
    if message.startswith("Object missing required field"):
        return "missing_field"
    if message.startswith("Expected `object`") and " - at " not in message:
        return "not_an_object"
    if message.endswith("at `$.ts`") and ("datetime" in message or "RFC3339" in message):
        return "bad_timestamp"
    if any(bound in message for bound in (" >= ", " <= ", " of length ")):
        return "invalid_field"
    if message.startswith("Expected"):
        return "wrong_type"
    return "invalid_field"


def decode_event(raw: bytes | None, *, now_ms: int, rules: EventRules) -> Event:
    """Validate one message value; raises InvalidEvent with a reason code."""
    if raw is None:
        raise InvalidEvent("null_value", "the record has no value (a tombstone), not an event")
    if len(raw) > rules.max_bytes:
        raise InvalidEvent(
            "oversized", f"{len(raw)} bytes exceeds events.max_bytes={rules.max_bytes}"
        )
    try:
        wire = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidEvent(_reason_of(message), message) from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent("malformed_json", str(exc) or "not JSON") from None
    except RecursionError:
        raise InvalidEvent("malformed_json", "JSON nested too deeply") from None
    duplicate = _duplicate_key(raw)
    if duplicate is not None:
        raise InvalidEvent("duplicate_key", f"field {duplicate!r} appears twice in one object")
    if not _printable(wire):
        raise InvalidEvent(
            "invalid_field", "event_id, user_id, type and channel must not hold control characters"
        )
    if wire.type not in rules.known_types:
        raise InvalidEvent("unknown_type", f"event type {wire.type!r} is not configured")
    ts = wire.ts
    ts_ms = ts if isinstance(ts, int) else round(ts.timestamp() * 1000)
    if ts_ms < rules.min_ts_ms:
        raise InvalidEvent(
            "bad_timestamp",
            f"ts {ts!r} is before {format_rfc3339_ms(rules.min_ts_ms)} "
            "(events.min_timestamp; seconds instead of ms?)",
        )
    if ts_ms > now_ms + rules.max_future_ms:
        raise InvalidEvent(
            "future_timestamp",
            f"ts is {(ts_ms - now_ms) / 1000:.0f}s ahead of the wall clock "
            f"(events.max_future_seconds={rules.max_future_ms / 1000:.0f})",
        )
    props = wire.properties
    amount = 0.0
    if props is not None and props.amount is not None:
        if props.amount != props.amount or abs(props.amount) > 1e12:
            raise InvalidEvent("invalid_field", "properties.amount must be a finite number")
        if props.amount < 0:
            raise InvalidEvent(
                "invalid_field",
                "properties.amount must not be negative (money back is a `refund` event)",
            )
        amount = props.amount
    if props is not None and props.rating is not None and not (
        rules.rating_min <= props.rating <= rules.rating_max
    ):
        raise InvalidEvent(
            "invalid_field",
            f"properties.rating {props.rating} is outside the rating scale "
            f"{rules.rating_min}-{rules.rating_max} (scoring.satisfaction.rating_min/max)",
        )
    return Event(wire.event_id, wire.user_id, wire.type, ts_ms, amount, wire.channel, props)
