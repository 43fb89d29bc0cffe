"""What a user looks like at one moment: the features rules, models and records read.

One `UserView` is computed per user per moment (a score record, a sweep, an observation
point), never per feature, so each window is walked once.
"""

from __future__ import annotations

import math

from scoring.config import DIMENSIONS
from scoring.dimensions import DimensionModel
from scoring.records import Rfm, ScoreRecord, StreakRecord, Windows
from scoring.state import UserState
from scoring.timeutil import MS_PER_DAY
from scoring.windows import (
    active_days_in_window,
    amount_in_window,
    counts_in_windows,
    current_streak,
    typical_gap_days,
)

# The churn models' input, in order. Documented in docs/models.md.
FEATURE_NAMES: tuple[str, ...] = (
    "recency_days",
    "silence_ratio",
    "typical_gap_days",
    "active_days_7",
    "active_days_28",
    "stickiness",
    "events_7d",
    "events_28d",
    "trend_7_28",
    "current_streak",
    "longest_streak",
    "tenure_days",
    "engagement_score",
    *DIMENSIONS,
    "monetary_28d",
)


class UserView:
    """Derived values of one user's state at `now_ms` (event time)."""

    __slots__ = (
        "active_days_7", "active_days_28", "counts_7d", "counts_28d", "current_streak",
        "dimensions", "engagement_score", "events_7d", "events_28d", "longest_streak",
        "monetary_28d", "now_ms", "recency_days", "silence_ratio", "state", "stickiness",
        "tenure_days", "typical_gap_days",
    )

    def __init__(
        self, state: UserState, now_ms: int, model: DimensionModel, default_gap_days: float
    ) -> None:
        now_ms = max(now_ms, state.last_ms)
        now_day = now_ms // MS_PER_DAY
        self.state = state
        self.now_ms = now_ms
        self.dimensions = model.at(state.dims, state.last_ms, now_ms)
        self.engagement_score = model.composite(self.dimensions)
        self.counts_7d, self.counts_28d = counts_in_windows(state, now_day)
        self.events_7d = sum(self.counts_7d.values())
        self.events_28d = sum(self.counts_28d.values())
        self.active_days_7 = active_days_in_window(state, now_day, 7)
        self.active_days_28 = active_days_in_window(state, now_day, 28)
        self.stickiness = self.active_days_7 / self.active_days_28 if self.active_days_28 else 0.0
        self.current_streak = current_streak(state, now_day)
        self.longest_streak = state.longest_streak
        self.recency_days = (now_ms - state.last_ms) / MS_PER_DAY
        self.typical_gap_days = typical_gap_days(state, default_gap_days)
        self.silence_ratio = self.recency_days / max(self.typical_gap_days, 1.0)
        self.tenure_days = (now_ms - state.first_ms) / MS_PER_DAY
        self.monetary_28d = amount_in_window(state, now_day, 28)

    def feature_vector(self) -> list[float]:
        d = self.dimensions
        return [
            self.recency_days,
            self.silence_ratio,
            self.typical_gap_days,
            float(self.active_days_7),
            float(self.active_days_28),
            self.stickiness,
            float(self.events_7d),
            float(self.events_28d),
            self.events_7d * 4.0 / (self.events_28d + 1.0),
            float(self.current_streak),
            float(self.longest_streak),
            self.tenure_days,
            self.engagement_score,
            *d,
            self.monetary_28d,
        ]

    def features(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.feature_vector(), strict=True))


def _r(x: float, digits: int = 4) -> float:
    return round(x, digits) if math.isfinite(x) else 0.0


def score_record(
    view: UserView,
    user_id: str,
    tier_name: str,
    churn_probability: float | None,
    type_names: dict[int, str],
    as_of: str,
    last_event_at: str,
    churn_model: str | None = None,
) -> ScoreRecord:
    """The `engagement-score/v1` record published to `engagement.scores` and snapshots."""
    s = view.state
    return ScoreRecord(
        user_id=user_id,
        as_of=as_of,
        engagement_score=_r(view.engagement_score),
        dimensions={n: _r(v) for n, v in zip(DIMENSIONS, view.dimensions, strict=True)},
        tier=tier_name,
        churn_probability=None if churn_probability is None else _r(churn_probability),
        days_since_last_event=_r(view.recency_days),
        last_event_at=last_event_at,
        windows=Windows(
            events_7d=view.events_7d,
            events_28d=view.events_28d,
            active_days_7=view.active_days_7,
            active_days_28=view.active_days_28,
            stickiness=_r(view.stickiness),
            counts_7d={type_names.get(c, str(c)): n for c, n in sorted(view.counts_7d.items())},
            counts_28d={
                type_names.get(c, str(c)): n for c, n in sorted(view.counts_28d.items())
            },
        ),
        rfm=Rfm(
            recency_days=_r(view.recency_days),
            frequency_28d=view.events_28d,
            monetary_28d=_r(view.monetary_28d, 2),
            monetary_total=_r(s.monetary, 2),
        ),
        streak=StreakRecord(current=view.current_streak, longest=view.longest_streak),
        tenure_days=_r(view.tenure_days),
        typical_gap_days=_r(view.typical_gap_days),
        silence_ratio=_r(view.silence_ratio),
        events_counted=s.events,
        events_capped=s.capped,
        churn_model=churn_model,
    )
