"""Per-user state: compact, msgpack-encoded, the only thing the Faust table stores per user.

Stored as a msgpack *map* with short, stable field names (never list positions), fields at
their default left out, and a version in field `v` of every struct. A release that adds a
field adds a name; one that changes a meaning bumps the version and adds a migration to
`scoring.state_codec`, which reads every older layout and refuses newer ones clearly.

Sizes matter (one changelog record per user per batch): day windows are sparse and relative
to the user's latest active day, event ids are 32-bit hashes kept only while a duplicate
could still be accepted, and every field has a small default that is not written at all.

Where each update came from is part of the state: `input_offset` is the offset of the last
record of the user's own input partition applied to it, `rekeyed_from` the same per source
partition for records that reached the user through the re-keying topic. A record at or
before those positions was already applied and is skipped, whatever its event time.
"""

from __future__ import annotations

import zlib

import msgspec

from scoring.churn.state import ChurnState
from scoring.period_points import PeriodPoints
from scoring.points_state import PointsState
from scoring.referral_state import ReferralState
from scoring.seen_state import Seen
from scoring.triggers.state import TriggerState

STATE_VERSION = 2


class UserState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=STATE_VERSION,
    rename={
        "first_ms": "f", "last_ms": "l", "dims": "d", "anchor_day": "ad", "first_day": "fd",
        "active_bits": "ab", "active_days": "an", "longest_streak": "ls", "day_counts": "dc",
        "day_amounts": "da", "lifetime": "lt", "events": "n", "monetary": "m",
        "recent_ids": "ri", "burst": "b", "capped": "cp", "tier": "t",
        "below_since_ms": "bs", "last_sweep_ms": "sw", "input_offset": "o",
        "rekeyed_from": "rk", "routed_from": "ro", "churn": "c", "triggers": "tr",
        "referral": "rf", "points": "pt", "periods": "pp", "experiments": "ex",
        "seen": "sn",
    },
):
    first_ms: int = 0  # first counted event (event time, epoch ms)
    last_ms: int = 0  # latest counted event; the reference time of `dims`
    dims: list[float] = msgspec.field(default_factory=list)  # decayed sums at last_ms
    anchor_day: int = 0  # latest active UTC day number (epoch days)
    first_day: int = 0
    active_bits: int = 0  # bit i set: active on anchor_day - i (64 days kept)
    active_days: int = 0  # lifetime active days
    longest_streak: int = 0
    day_counts: dict[int, dict[int, int]] = msgspec.field(default_factory=dict)  # age->code->n
    day_amounts: dict[int, float] = msgspec.field(default_factory=dict)  # age -> net amount
    lifetime: dict[int, int] = msgspec.field(default_factory=dict)  # type_code -> count
    events: int = 0  # counted events, lifetime
    monetary: float = 0.0  # net amount, lifetime
    recent_ids: list[int] = msgspec.field(default_factory=list)  # [id_hash, ts_seconds]*
    burst: list[int] = msgspec.field(default_factory=list)  # [minute, count]*
    capped: int = 0  # events not counted because of the burst cap, lifetime
    tier: str = ""  # the tier's name ("": the lowest tier)
    below_since_ms: int = 0  # when the score fell under the demotion line (0: it has not)
    last_sweep_ms: int = 0
    input_offset: int = -1  # last applied offset of the user's own input partition
    rekeyed_from: dict[int, int] = msgspec.field(default_factory=dict)  # source part -> offset
    routed_from: dict[int, int] = msgspec.field(default_factory=dict)  # source -> position
    churn: ChurnState = msgspec.field(default_factory=ChurnState)
    triggers: TriggerState = msgspec.field(default_factory=TriggerState)
    referral: ReferralState = msgspec.field(default_factory=ReferralState)
    points: PointsState = msgspec.field(default_factory=PointsState)
    periods: PeriodPoints = msgspec.field(default_factory=PeriodPoints)
    # trigger type code -> [entered_ms, variant (1 treatment, 0 control), converted]
    experiments: dict[int, list[int]] = msgspec.field(default_factory=dict)
    seen: Seen = msgspec.field(default_factory=Seen)


# Contract v1's types have fixed one-byte codes; types added by configuration get a code
# from their name's hash in 16..127 (still one msgpack byte). Codes never depend on the
# order of the config file, so a state written under one config reads under the next.
CONTRACT_TYPES: tuple[str, ...] = (
    "session_start", "view", "like", "comment", "share", "post", "review", "purchase",
    "refund", "referral", "checkin", "follow", "feedback", "reward_redeemed",
)
_FIXED = {t: i for i, t in enumerate(CONTRACT_TYPES)}


def type_code(event_type: str) -> int:
    """A stable one-byte code for an event type."""
    code = _FIXED.get(event_type)
    return code if code is not None else 16 + zlib.crc32(event_type.encode()) % 112


def id_hash(event_id: str) -> int:
    return zlib.crc32(event_id.encode())


def name_hash(name: str) -> int:
    """What state keeps of a configured name (a badge): stable, 5 msgpack bytes."""
    return zlib.crc32(name.encode())
