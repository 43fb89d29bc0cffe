"""Per-user trigger bookkeeping kept inside UserState (a versioned map, see scoring.state).

Trigger types are keyed by their rule's fixed code, never by a list position; badges by a
hash of their configured name, so reordering or adding rules and badges keeps every
user's history.
"""

from __future__ import annotations

import zlib

import msgspec

TRIGGER_STATE_VERSION = 1


class TriggerState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=TRIGGER_STATE_VERSION,
    rename={
        "last_fired_ms": "lf", "episodes": "e", "badges": "b", "day": "d", "day_count": "dn",
        "streak_served": "ss", "streak_start": "st", "onboarding_done": "ob",
    },
):
    """Episodes served, cooldowns and the daily cap, for one user."""

    last_fired_ms: dict[int, int] = msgspec.field(default_factory=dict)  # type code -> ms
    episodes: dict[int, int] = msgspec.field(default_factory=dict)  # type code -> episode hash
    badges: list[int] = msgspec.field(default_factory=list)  # name_hash of earned badges
    day: int = -1  # UTC day of `day_count`
    day_count: int = 0
    streak_served: int = 0  # streak length already celebrated...
    streak_start: int = 0  # ...in the streak that began on this UTC day
    onboarding_done: bool = False


def episode_hash(episode: str) -> int:
    """What the user's state keeps of an episode: enough to recognise it, in 5 bytes."""
    return zlib.crc32(episode.encode())
