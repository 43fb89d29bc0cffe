"""Population health from an event history: weekly cohort retention, repurchase, referral
and DAU/MAU stickiness — the numbers a growth team watches next to trigger uplift.

Definitions (UTC calendar; weeks start on Monday):
- a user is *active* on a day or in a week with at least one valid event then;
- a user's *cohort* is the week of their first event; retention[k] is the share of the
  cohort active in the k-th week after it (week 0 is 100% by construction);
- *repurchase rate*: among users with a purchase, the share with two or more (distinct
  `event_id`s, so producer retries do not count twice);
- *referral rate*: the share of all users with at least one referral event;
- *stickiness*: mean daily active users over the last `stickiness_days` days of the history
  divided by the users active in those days (DAU/MAU with a 28-day month by default).
Pure: the shell feeds valid events with `add`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from scoring.timeutil import MS_PER_DAY

EPOCH_MONDAY = 4  # 1970-01-05, the first Monday after the epoch, as a day number
STICKINESS_DAYS = 28


def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%d")


def _week(day: int) -> int:
    return (day - EPOCH_MONDAY) // 7


def _ratio(part: int | float, whole: int) -> float | None:
    return part / whole if whole else None


class _User:
    __slots__ = ("days", "purchases", "referred")

    def __init__(self) -> None:
        self.days: set[int] = set()
        self.purchases: set[str] = set()
        self.referred = False


class PopulationTally:
    """Per-user activity, gathered one valid event at a time."""

    def __init__(self, purchase_type: str = "purchase", referral_type: str = "referral") -> None:
        self.purchase_type = purchase_type
        self.referral_type = referral_type
        self._users: dict[str, _User] = {}
        self.events = 0

    def add(self, user_id: str, event_type: str, ts_ms: int, event_id: str) -> None:
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User()
        self.events += 1
        user.days.add(ts_ms // MS_PER_DAY)
        if event_type == self.purchase_type:
            user.purchases.add(event_id)
        elif event_type == self.referral_type:
            user.referred = True

    def report(self, stickiness_days: int = STICKINESS_DAYS) -> dict[str, Any]:
        """The population report (the shape of scoring/schemas/population-report.v1.json)."""
        users = self._users.values()
        all_days = [d for u in users for d in u.days]
        if not all_days:
            return {"users": 0, "events": 0, "first_day": None, "last_day": None,
                    "retention": {"last_week_complete": None, "cohorts": []},
                    "repurchase": {"purchasers": 0, "repeat_purchasers": 0, "rate": None},
                    "referral": {"users": 0, "referrers": 0, "rate": None},
                    "stickiness": None}
        first_day, last_day = min(all_days), max(all_days)
        purchasers = sum(1 for u in users if u.purchases)
        repeaters = sum(1 for u in users if len(u.purchases) >= 2)
        referrers = sum(1 for u in users if u.referred)
        return {
            "users": len(self._users),
            "events": self.events,
            "first_day": _date(first_day),
            "last_day": _date(last_day),
            "retention": {
                "last_week_complete": (last_day - EPOCH_MONDAY) % 7 == 6,
                "cohorts": self._cohorts(_week(last_day)),
            },
            "repurchase": {"purchasers": purchasers, "repeat_purchasers": repeaters,
                           "rate": _ratio(repeaters, purchasers)},
            "referral": {"users": len(self._users), "referrers": referrers,
                         "rate": _ratio(referrers, len(self._users))},
            "stickiness": self._stickiness(first_day, last_day, stickiness_days),
        }

    def _cohorts(self, last_week: int) -> list[dict[str, Any]]:
        members: dict[int, list[_User]] = {}
        for user in self._users.values():
            members.setdefault(_week(min(user.days)), []).append(user)
        cohorts = []
        for week in sorted(members):
            group = members[week]
            active = Counter(k for u in group for k in {_week(d) - week for d in u.days})
            counts = [active[k] for k in range(last_week - week + 1)]
            cohorts.append({
                "week": _date(EPOCH_MONDAY + 7 * week),
                "users": len(group),
                "active": counts,
                "retention": [n / len(group) for n in counts],
            })
        return cohorts

    def _stickiness(self, first_day: int, last_day: int, span: int) -> dict[str, Any]:
        start = max(first_day, last_day - span + 1)
        days = last_day - start + 1
        daily = Counter(d for u in self._users.values() for d in u.days if d >= start)
        monthly = sum(1 for u in self._users.values() if any(d >= start for d in u.days))
        mean_dau = sum(daily.values()) / days
        return {"window_start": _date(start), "window_end": _date(last_day),
                "window_days": days, "mean_dau": mean_dau, "mau": monthly,
                "dau_mau": _ratio(mean_dau, monthly)}
