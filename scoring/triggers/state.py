"""Per-user trigger bookkeeping kept inside UserState."""

from __future__ import annotations

import msgspec


class TriggerState(msgspec.Struct, array_like=True, omit_defaults=True):
    """Cooldowns, caps and served episodes for one user. (Extended by the triggers module.)"""

    last_fired_ms: dict[str, int] = msgspec.field(default_factory=dict)
