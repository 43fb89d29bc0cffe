"""Population health, live (an engine extension): the outcomes incentives aim at.

Each partition counts, in event time: users; daily and calendar-monthly active users (DAU,
MAU: stickiness is DAU/MAU); retention by weekly cohort (users whose first event fell in
week W, active again in week W+k, k up to `MAX_WEEKS`); buyers and repeat buyers (the
repurchase rate); referrers. The counts live in the partition's persisted state, so they
survive restarts and move with the partition; the worker exports them as gauges labelled by
partition (sum them), and `engage report FILE` computes the same offline.
"""

from __future__ import annotations

from typing import ClassVar

from scoring.config import EngageConfig
from scoring.extensions import Extension, Moment
from scoring.leaderboards import month_of, week_of
from scoring.state import type_code
from scoring.timeutil import MS_PER_DAY

MAX_WEEKS = 12  # cohorts and weeks since the first event kept
PURCHASE = type_code("purchase")


class Population(Extension):
    name: ClassVar[str] = "population"

    def __init__(self, config: EngageConfig) -> None:
        super().__init__(config)

    def on_event(self, m: Moment) -> None:
        s, seen = m.state, m.state.seen
        counts = m.shared.stored.population
        now = m.now_ms
        day, week, month = now // MS_PER_DAY, week_of(now), month_of(now)
        if s.events == 1:
            counts["users"] = counts.get("users", 0) + 1
            seen.first_week = week
        if m.new_active_day and day > seen.day:
            seen.day = day
            key = f"dau:{day}"
            counts[key] = counts.get(key, 0) + 1
            _prune(counts, "dau:", day - 2)
        if month > seen.month:
            seen.month = month
            key = f"mau:{month}"
            counts[key] = counts.get(key, 0) + 1
            _prune(counts, "mau:", month - 1)
        if week > seen.week:
            seen.week = week
            since = week - seen.first_week
            if 0 <= since <= MAX_WEEKS:
                key = f"cohort:{seen.first_week}:{since}"
                counts[key] = counts.get(key, 0) + 1
            _prune(counts, "cohort:", week - MAX_WEEKS)
        event = m.event
        assert event is not None
        if event.type == "purchase":
            bought = s.lifetime.get(PURCHASE, 0)
            if bought in (1, 2):
                key = "buyers" if bought == 1 else "repeat_buyers"
                counts[key] = counts.get(key, 0) + 1
        if event.type == "referral" and s.referral.sent == 1:
            counts["referrers"] = counts.get("referrers", 0) + 1


def _prune(counts: dict[str, int], prefix: str, oldest: int) -> None:
    """Drop the `prefix` counters of periods before `oldest` (a cohort by its first week)."""
    stale = [k for k in counts if k.startswith(prefix) and int(k.split(":")[1]) < oldest]
    for key in stale:
        del counts[key]
