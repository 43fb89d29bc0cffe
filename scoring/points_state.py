"""Per-user points ledger kept inside UserState (see scoring/points.py)."""

from __future__ import annotations

import msgspec


class PointsState(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="v", tag=1,
    rename={"lots": "l", "earned": "e", "spent": "s", "expired": "x", "refused": "r"},
):
    lots: list[list[int]] = msgspec.field(default_factory=list)  # [expires_ms, points] oldest 1st
    earned: int = 0
    spent: int = 0
    expired: int = 0
    refused: int = 0  # redemptions refused for want of points


def balance(points: PointsState, now_ms: int) -> int:
    return sum(n for expires, n in points.lots if expires > now_ms)
