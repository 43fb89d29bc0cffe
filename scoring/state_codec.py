"""Reading and writing stored user state, across releases.

The current layout (scoring.state, version 2) is a msgpack map whose structs carry their
version in `v`. Version 1 (engage 0.1) stored positional arrays, a tier by its index in the
configured tier list and badges as bits by their index in the configured badge list; it is
read by its own frozen structs below and migrated on read, using the names that the config
in use gives those positions. A version newer than this release knows is refused with
`StateVersionError`, never guessed at.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from scoring.churn.state import ChurnState
from scoring.config import EngageConfig
from scoring.state import STATE_VERSION, UserState, name_hash
from scoring.triggers.state import TriggerState


class StateVersionError(ValueError):
    """Stored state this release cannot read (written by a newer one, or not state at all)."""


# -- version 1, frozen as engage 0.1 wrote it (tests/fixtures/state_v1.json) --------------


class _ChurnV1(msgspec.Struct, array_like=True):
    obs: list[int] = msgspec.field(default_factory=list)
    last_obs_day: int = -1
    churned_ms: int = 0
    examples: int = 0


class _TriggersV1(msgspec.Struct, array_like=True):
    last_fired_ms: dict[int, int] = msgspec.field(default_factory=dict)  # by TRIGGER_TYPES pos
    episodes: dict[int, int] = msgspec.field(default_factory=dict)
    badges: int = 0  # bit i: configured badge i
    day: int = -1
    day_count: int = 0
    streak_served: int = 0
    streak_start: int = 0
    onboarding_done: bool = False


class _UserV1(msgspec.Struct, array_like=True):
    version: int = 1
    first_ms: int = 0
    last_ms: int = 0
    dims: list[float] = msgspec.field(default_factory=list)
    anchor_day: int = 0
    first_day: int = 0
    active_bits: int = 0
    active_days: int = 0
    longest_streak: int = 0
    day_counts: dict[int, dict[int, int]] = msgspec.field(default_factory=dict)
    day_amounts: dict[int, float] = msgspec.field(default_factory=dict)
    lifetime: dict[int, int] = msgspec.field(default_factory=dict)
    events: int = 0
    monetary: float = 0.0
    recent_ids: list[int] = msgspec.field(default_factory=list)
    burst: list[int] = msgspec.field(default_factory=list)
    capped: int = 0
    tier: int = 0
    below_since_ms: int = 0
    last_sweep_ms: int = 0
    churn: _ChurnV1 = msgspec.field(default_factory=_ChurnV1)
    triggers: _TriggersV1 = msgspec.field(default_factory=_TriggersV1)


class _Version(msgspec.Struct):
    v: int = 0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(UserState)
_v1_decoder = msgspec.msgpack.Decoder(_UserV1)
_version_decoder = msgspec.msgpack.Decoder(_Version)

# msgpack type bytes: fixarray, array16, array32 (v1) and fixmap, map16, map32 (v2 and later)
_ARRAY_HEAD = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])


class StateCodec:
    """Encodes the current layout; decodes it and every older one.

    `tier_names` and `badge_names` are the configured lists, in order: version 1 stored
    positions in them, so migrating needs the names those positions stand for.
    """

    def __init__(self, tier_names: Sequence[str] = (), badge_names: Sequence[str] = ()) -> None:
        self.tier_names = list(tier_names)
        self.badge_hashes = [name_hash(n) for n in badge_names]

    @staticmethod
    def encode(state: UserState) -> bytes:
        return _encoder.encode(state)

    def decode(self, raw: bytes) -> UserState:
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError:
            pass  # another layout (or not state): find out which, below
        if raw[:1] and raw[0] in _ARRAY_HEAD:
            try:
                return self._from_v1(_v1_decoder.decode(raw))
            except msgspec.DecodeError as exc:
                raise StateVersionError(f"unreadable version-1 user state: {exc}") from None
        try:
            version = _version_decoder.decode(raw).v
        except msgspec.DecodeError as exc:
            raise StateVersionError(f"not engage user state: {exc}") from None
        if version > STATE_VERSION:
            raise StateVersionError(
                f"user state version {version} was written by a newer engage release "
                f"(this one reads versions 1 to {STATE_VERSION}); upgrade this worker"
            )
        raise StateVersionError(f"corrupt user state (version {version})")

    def _from_v1(self, old: _UserV1) -> UserState:
        tier = self.tier_names[old.tier] if 0 < old.tier < len(self.tier_names) else ""
        badges = [h for i, h in enumerate(self.badge_hashes) if old.triggers.badges >> i & 1]
        t = old.triggers
        c = old.churn
        return UserState(
            first_ms=old.first_ms, last_ms=old.last_ms, dims=old.dims,
            anchor_day=old.anchor_day, first_day=old.first_day, active_bits=old.active_bits,
            active_days=old.active_days, longest_streak=old.longest_streak,
            day_counts=old.day_counts, day_amounts=old.day_amounts, lifetime=old.lifetime,
            events=old.events, monetary=old.monetary, recent_ids=old.recent_ids,
            burst=old.burst, capped=old.capped, tier=tier,
            below_since_ms=old.below_since_ms, last_sweep_ms=old.last_sweep_ms,
            # version 1's open daily observation points are dropped (log-scale points since)
            churn=ChurnState(churned_ms=c.churned_ms, examples=c.examples),
            # version 1's trigger positions are the rules' fixed codes (scoring.triggers)
            triggers=TriggerState(
                last_fired_ms=t.last_fired_ms, episodes=t.episodes, badges=badges, day=t.day,
                day_count=t.day_count, streak_served=t.streak_served,
                streak_start=t.streak_start, onboarding_done=t.onboarding_done,
            ),
        )


def codec_for(config: EngageConfig) -> StateCodec:
    """The codec for a deployment's config (its tier and badge names, for migrations)."""
    return StateCodec(
        [level.name for level in config.tiers.levels],
        [badge.name for badge in getattr(config.triggers.rule("milestone"), "badges", ())],
    )


encode_state = StateCodec.encode


def decode_state(raw: bytes) -> UserState:
    """Decode the current layout, or refuse; migrating version 1 needs `codec_for(config)`."""
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        return StateCodec().decode(raw)
