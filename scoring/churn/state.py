"""Per-user churn bookkeeping kept inside UserState."""

from __future__ import annotations

import msgspec


class ChurnState(msgspec.Struct, array_like=True):
    """The open observation point (at most one), and the user's churn history."""

    obs_ms: int = 0  # time of the open observation point (0: none open)
    obs_features: bytes = b""  # float32 feature vector at obs_ms
    last_obs_day: int = -1  # UTC day of the latest observation point (one per day at most)
    churned_ms: int = 0  # when the user was last labelled churned (0: never / came back)
    examples: int = 0  # resolved examples, lifetime
