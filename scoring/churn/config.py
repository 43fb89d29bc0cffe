"""Configuration of the churn section (`[churn]` in the rules file)."""

from __future__ import annotations

import msgspec


class ChurnConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Churn label and model settings. (Owned by the churn module; extended there.)"""

    horizon_days: float = 14.0
