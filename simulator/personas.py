"""Persona definitions: how often a kind of user shows up and what they do when they do.

Every persona is plain data (rates, ranges, event mixes); the population planner
(`simulator.population`) turns it into a per-user schedule of sessions and the traffic
generator (`simulator.traffic`) fills the sessions with events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

EVENT_TYPES: tuple[str, ...] = (
    "session_start", "view", "like", "comment", "share", "post", "review", "purchase",
    "refund", "referral", "checkin", "follow", "feedback", "reward_redeemed",
)
CHANNELS: tuple[str, ...] = ("web", "ios", "android")
PERSONAS: tuple[str, ...] = ("new", "core", "casual", "lapsing", "returning")

DEFAULT_MIX: Mapping[str, float] = MappingProxyType({
    "new": 0.15, "core": 0.20, "casual": 0.35, "lapsing": 0.20, "returning": 0.10,
})

# Relative weight of each hour of the day (UTC) for session starts: quiet at night,
# a lunch bump, a peak in the evening (19-21h).
HOUR_WEIGHTS: tuple[float, ...] = (
    1.2, 0.8, 0.5, 0.4, 0.4, 0.5, 0.9, 1.6, 2.4, 2.6, 2.7, 2.9,
    3.4, 3.3, 2.9, 2.8, 3.0, 3.6, 4.4, 5.4, 5.9, 5.6, 4.2, 2.4,
)
WEEKEND_BOOST = 1.3  # Saturday/Sunday: more users active, a bit more per session


def _mix(**weights: float) -> Mapping[str, float]:
    return MappingProxyType(dict(weights))


@dataclass(frozen=True, slots=True)
class PersonaSpec:
    """Behavioural parameters of one persona (activity level and in-session mix)."""

    name: str
    active_prob: float  # chance of being active on a given weekday (Bernoulli personas)
    gap_days: tuple[int, int] = (0, 0)  # (min, max) days between active days; (0, 0) = Bernoulli
    session_weights: tuple[float, float, float] = (0.5, 0.35, 0.15)  # 1, 2 or 3 sessions a day
    events_per_session: tuple[int, int] = (3, 10)  # events after session_start
    mean_gap_s: float = 45.0  # mean seconds between two events of a session
    mix: Mapping[str, float] = field(default_factory=lambda: _mix(view=1.0))
    rating_weights: tuple[float, float, float, float, float] = (0.05, 0.07, 0.18, 0.35, 0.35)
    refund_prob: float = 0.03  # share of purchases refunded some days later
    purchase_median: float = 30.0  # lognormal purchase amount, median (currency units)
    purchase_sigma: float = 0.6


CORE = PersonaSpec(
    name="core", active_prob=0.8, session_weights=(0.25, 0.45, 0.30),
    events_per_session=(6, 18), mean_gap_s=40.0,
    mix=_mix(view=30, like=18, comment=8, share=5, post=5, review=2, purchase=4,
             referral=0.7, checkin=4, follow=3, feedback=1, reward_redeemed=1.5),
    rating_weights=(0.03, 0.05, 0.12, 0.35, 0.45),
)
CASUAL = PersonaSpec(
    name="casual", active_prob=0.0, gap_days=(2, 6), session_weights=(0.75, 0.22, 0.03),
    events_per_session=(2, 7), mean_gap_s=50.0,
    mix=_mix(view=55, like=25, comment=2, share=2, post=0.5, review=0.5, purchase=1.2,
             referral=0.1, checkin=2, follow=1, feedback=0.3, reward_redeemed=0.3),
)
LAPSING = PersonaSpec(
    name="lapsing", active_prob=0.68, session_weights=(0.40, 0.40, 0.20),
    events_per_session=(4, 14), mean_gap_s=45.0,
    mix=_mix(view=40, like=18, comment=5, share=3, post=2, review=1.5, purchase=2.5,
             referral=0.2, checkin=3, follow=1.5, feedback=2.5, reward_redeemed=1),
    rating_weights=(0.15, 0.20, 0.25, 0.25, 0.15),
    refund_prob=0.06,
)
RETURNING = PersonaSpec(
    name="returning", active_prob=0.55, session_weights=(0.55, 0.35, 0.10),
    events_per_session=(3, 11), mean_gap_s=45.0,
    mix=_mix(view=45, like=20, comment=4, share=3, post=1.5, review=1, purchase=2,
             referral=0.3, checkin=3, follow=1.5, feedback=1, reward_redeemed=1),
)
NEW = PersonaSpec(
    name="new", active_prob=0.7, session_weights=(0.45, 0.40, 0.15),
    events_per_session=(4, 12), mean_gap_s=35.0,
    mix=_mix(view=40, like=15, comment=4, share=2, post=3, review=1, purchase=2,
             referral=0.5, checkin=5, follow=10, feedback=2, reward_redeemed=1),
)

SPECS: Mapping[str, PersonaSpec] = MappingProxyType({
    s.name: s for s in (NEW, CORE, CASUAL, LAPSING, RETURNING)
})

# `new` users who do not stall grow into one of these (probability of `core`).
NEW_BECOMES_CORE = 0.4
NEW_STALL_SHARE = 0.4


def normalise_mix(mix: Mapping[str, float] | None) -> dict[str, float]:
    """Validate a persona mix and scale it to sum to 1 (missing personas get 0)."""
    source = DEFAULT_MIX if mix is None else mix
    unknown = sorted(set(source) - set(PERSONAS))
    if unknown:
        raise ValueError(f"unknown persona(s) in mix: {', '.join(unknown)}; "
                         f"known: {', '.join(PERSONAS)}")
    if any(w < 0 for w in source.values()):
        raise ValueError("persona mix weights must be >= 0")
    total = float(sum(source.values()))
    if total <= 0:
        raise ValueError("persona mix weights must not all be 0")
    return {p: float(source.get(p, 0.0)) / total for p in PERSONAS}
