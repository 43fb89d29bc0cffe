"""Per-user churn bookkeeping kept inside UserState."""

from __future__ import annotations

import msgspec


class ChurnState(msgspec.Struct, array_like=True):
    """Open observation points and the user's churn status."""

    obs: list[int] = msgspec.field(default_factory=list)  # open observation times (ms)
    last_obs_day: int = -1  # UTC day of the latest observation point (one per day at most)
    churned_ms: int = 0  # when the user was last labelled churned (0: never / came back)
    examples: int = 0  # resolved examples, lifetime
