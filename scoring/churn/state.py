"""Per-user churn bookkeeping kept inside UserState (a versioned map, see scoring.state).

Two things live here, both O(1) in size and in update cost:

- the user's **lifetime summary over return events** (scoring.churn.lifetime): first and
  last return day, return days, gap variance, decayed return-day counts, spend — the
  quantities BG/NBD and the churn features are computed from;
- the **observation schedule** of the current silence (scoring.churn.schedule): the anchor
  is `last_ms` (the latest return), `resolved` counts its points already labelled churned,
  and `key` is a hash of the user id that places the points (the engine asks for due times
  with the state alone).

Short names are stable: "o" and "d" (the daily observation points of engage 0.1) are retired
and never reused; an old state that still carries them reads without them.
"""

from __future__ import annotations

import msgspec

CHURN_STATE_VERSION = 1


class ChurnState(
    msgspec.Struct,
    kw_only=True,
    omit_defaults=True,
    tag_field="v",
    tag=CHURN_STATE_VERSION,
    rename={
        "churned_ms": "c", "examples": "n", "first_day": "fd", "last_day": "ld",
        "last_ms": "lm", "active_days": "an", "gap_m2": "g2", "pulse_short": "ps",
        "pulse_long": "pl", "spend": "sp", "paid": "pd", "recent_days": "rb",
        "before_recent": "bw", "resolved": "rs", "key": "k",
    },
):
    """A user's lifetime over return events, their observation schedule and churn status."""

    churned_ms: int = 0  # when the user was last labelled churned (0: never / came back)
    examples: int = 0  # resolved examples, lifetime
    first_day: int = -1  # UTC day of the first return (-1: none yet)
    last_day: int = -1  # latest return day
    last_ms: int = 0  # latest return (event time): the anchor of the observation points
    active_days: int = 0  # distinct return days; BG/NBD's frequency x = active_days - 1
    gap_m2: float = 0.0  # Welford sum of squared deviations of the gaps between return days
    pulse_short: float = 0.0  # return days decayed with tau = horizon, as of last_day
    pulse_long: float = 0.0  # the same with tau = 4 horizons
    spend: float = 0.0  # net amount of returns (purchases +, refunds -)
    paid: int = 0  # returns that carried a positive amount
    recent_days: int = 0  # bit i: a return on last_day - i (RECENT_DAYS kept, for late days)
    before_recent: int = -1  # the latest return day older than those bits (-1: none)
    resolved: int = 0  # points of the current anchor already labelled churned
    key: int = 0  # 16-bit hash of the user id: where the observation points fall


RECENT_DAYS = 16  # > the longest allowed lateness (7 days) plus a day boundary
