"""Per-user churn bookkeeping kept inside UserState (a versioned map, see scoring.state)."""

from __future__ import annotations

import msgspec

CHURN_STATE_VERSION = 1


class ChurnState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=CHURN_STATE_VERSION,
    rename={"obs": "o", "last_obs_day": "d", "churned_ms": "c", "examples": "n"},
):
    """Open observation points and the user's churn status."""

    obs: list[int] = msgspec.field(default_factory=list)  # open observation times (ms)
    last_obs_day: int = -1  # UTC day of the latest observation point (one per day at most)
    churned_ms: int = 0  # when the user was last labelled churned (0: never / came back)
    examples: int = 0  # resolved examples, lifetime
