"""Per-user trigger bookkeeping kept inside UserState."""

from __future__ import annotations

import msgspec


class TriggerState(msgspec.Struct, array_like=True):
    """Episodes served, cooldowns and the daily cap, for one user."""

    last_fired_ms: dict[int, int] = msgspec.field(default_factory=dict)  # type index -> ms
    episodes: dict[int, int] = msgspec.field(default_factory=dict)  # type index -> episode hash
    badges: int = 0  # bit i: milestone badge i earned
    day: int = -1  # UTC day of `day_count`
    day_count: int = 0
    streak_served: int = 0  # streak length already celebrated...
    streak_start: int = 0  # ...in the streak that began on this UTC day
    onboarding_done: bool = False
