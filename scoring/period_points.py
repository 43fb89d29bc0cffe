"""Per-user points by period kept inside UserState (see scoring/leaderboards.py)."""

from __future__ import annotations

import msgspec


class PeriodPoints(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="v", tag=1,
    rename={"week": "w", "week_points": "wp", "month": "m", "month_points": "mp",
            "all_points": "ap"},
):
    """One user's points: this week's, this month's and all time's, per dimension."""

    week: int = -1  # UTC week number (Monday-based weeks since the epoch)
    week_points: list[float] = msgspec.field(default_factory=list)
    month: int = -1  # year * 12 + month - 1
    month_points: list[float] = msgspec.field(default_factory=list)
    all_points: list[float] = msgspec.field(default_factory=list)
