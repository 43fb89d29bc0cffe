"""When a user was last counted active, per period (see scoring/population_health.py)."""

from __future__ import annotations

import msgspec


class Seen(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="v", tag=1,
    rename={"day": "d", "week": "w", "month": "m", "first_week": "f"},
):
    day: int = -1  # the latest UTC day counted active
    week: int = -1  # the latest UTC week (Monday-based) counted active
    month: int = -1  # the latest calendar month counted active (year * 12 + month - 1)
    first_week: int = 0  # the week of the first event: the user's cohort
