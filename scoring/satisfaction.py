"""Satisfaction: what a user's ratings say, recent ones weighing more.

Each `properties.rating` on a rating event type (`review`, `feedback` by default) is mapped
onto 0..1 over the configured scale (`rating_min` -> 0, `rating_max` -> 1) and enters a
decayed mean with the half-life `half_life_days`:

    satisfaction = 100 * sum_i w_i * r_i / sum_i w_i,   w_i = 2^(-(t_ref - t_i) / half_life)

Numerator and denominator decay alike, so the value only changes when a rating arrives (it
does not drift towards 0 while the user is silent), and a late rating is discounted the way
the dimensions discount it: the result does not depend on arrival order. A user who never
rated has no satisfaction (None), not 0. A rating at or below `bad_at_most` is bad: its
event time is kept, so rules can hold back after one.
"""

from __future__ import annotations

from scoring.config import EngageConfig
from scoring.state import UserState
from scoring.timeutil import MS_PER_DAY


class SatisfactionModel:
    def __init__(self, config: EngageConfig) -> None:
        c = config.scoring.satisfaction
        self.event_types = frozenset(c.event_types)
        self.low = c.rating_min
        self.span = c.rating_max - c.rating_min
        self.bad_at_most = c.bad_at_most
        self.good_at_least = c.good_at_least
        self.half_life_ms = c.half_life_days * MS_PER_DAY

    def rates(self, event_type: str, rating: int | None) -> bool:
        return rating is not None and event_type in self.event_types

    def add(self, state: UserState, rating: int, ts_ms: int) -> None:
        """Count one rating given at `ts_ms` (in place)."""
        value = (rating - self.low) / self.span
        ref = state.rating_ref_ms
        if state.ratings == 0 or ts_ms >= ref:
            decay = 2.0 ** (-(ts_ms - ref) / self.half_life_ms) if state.ratings else 0.0
            state.rating_sum = state.rating_sum * decay + value
            state.rating_weight = state.rating_weight * decay + 1.0
            state.rating_ref_ms = ts_ms
            state.last_rating = rating
        else:  # a late rating: discounted to the reference time, order-independent
            weight = 2.0 ** (-(ref - ts_ms) / self.half_life_ms)
            state.rating_sum += value * weight
            state.rating_weight += weight
        state.ratings += 1
        if rating <= self.bad_at_most and ts_ms > state.last_bad_rating_ms:
            state.last_bad_rating_ms = ts_ms

    @staticmethod
    def value(state: UserState) -> float | None:
        """0..100, or None for a user who never rated."""
        if not state.ratings or state.rating_weight <= 0:
            return None
        return 100.0 * state.rating_sum / state.rating_weight

    def is_bad(self, rating: int) -> bool:
        return rating <= self.bad_at_most

    def is_good(self, rating: int) -> bool:
        return rating >= self.good_at_least
