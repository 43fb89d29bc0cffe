"""Per-user churn bookkeeping kept inside UserState."""

from __future__ import annotations

import msgspec


class ChurnState(msgspec.Struct, array_like=True, omit_defaults=True):
    """Pending observation points and labels for one user. (Extended by the churn module.)"""

    last_observation_ms: int = 0
