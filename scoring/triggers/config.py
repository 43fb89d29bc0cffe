"""Configuration of the triggers section (`[triggers]` in the rules file)."""

from __future__ import annotations

import msgspec


class TriggersConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Trigger rules. (Owned by the triggers module; extended there.)"""

    enabled: bool = True
