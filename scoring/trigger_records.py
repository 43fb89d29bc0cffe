"""Reading trigger v1 records back: the few fields the offline analyses (uplift, what-if) use.

Decoding is strict about those fields and ignores the rest, so a record written by any
version of `engage replay --triggers` or read from `triggers.audit` is accepted as long as
the contract's core holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from scoring.triggers.registry import rules

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class _WireTrigger(msgspec.Struct, frozen=True):
    trigger_id: str
    type: str
    user_id: str
    variant: Literal["treatment", "control"]
    event_time: AwareDatetime
    tier: str


class TriggerRecord(msgspec.Struct, frozen=True):
    """One trigger as the analyses see it; `at_ms` is its event time in epoch ms."""

    trigger_id: str
    type: str
    user_id: str
    variant: str
    at_ms: int
    tier: str


class BadTriggerRecord(ValueError):
    """A line that is not a trigger v1 record; the message says which field is at fault."""


_decoder = msgspec.json.Decoder(_WireTrigger)


def decode_trigger(raw: bytes) -> TriggerRecord:
    try:
        wire = _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadTriggerRecord(str(exc)) from None
    at_ms = round(wire.event_time.timestamp() * 1000)
    return TriggerRecord(wire.trigger_id, wire.type, wire.user_id, wire.variant, at_ms, wire.tier)


def type_rank(trigger_type: str) -> tuple[int, str]:
    """Sort key: the registry's codes of trigger types, then unknown types by name."""
    codes = {r.trigger_type: r.code for r in rules()}
    return codes.get(trigger_type, 1 << 30), trigger_type
