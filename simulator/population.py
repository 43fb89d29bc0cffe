"""Deterministic population: who the users are and when each of their sessions happens.

Planning is done up front at *session* granularity (start, duration, event count, seed),
which is small (a few tuples per active day) and fixes every user's first and last event
time — so the ground truth is known before a single event is generated. Events inside a
session are produced lazily by `simulator.traffic` from the session's own seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from scoring.timeutil import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, format_rfc3339_ms
from simulator.personas import (
    CHANNELS,
    HOUR_WEIGHTS,
    NEW_BECOMES_CORE,
    NEW_STALL_SHARE,
    PERSONAS,
    SPECS,
    WEEKEND_BOOST,
    PersonaSpec,
    normalise_mix,
)

_HOUR_CUM: list[float] = list(accumulate(HOUR_WEIGHTS))
_MIN_SESSION_GAP_MS = 5 * MS_PER_MINUTE


def weekday(epoch_day: int) -> int:
    """Monday = 0 ... Sunday = 6 for a day number since the epoch (1970-01-01 was Thursday)."""
    return (epoch_day + 3) % 7


@dataclass(frozen=True, slots=True)
class Session:
    """One planned session: events at [start_ms, start_ms + duration_ms], both ends included."""

    start_ms: int
    duration_ms: int
    n_events: int  # including the opening session_start
    seed: int
    spec: str  # whose in-session behaviour to use (a grown-up `new` user acts as core/casual)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True, slots=True)
class Truth:
    """Ground truth for one user, known from the plan before events are generated."""

    user_id: str
    persona: str
    signup_at: str
    first_event_at: str | None
    last_event_at: str | None
    churned: bool
    churn_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id, "persona": self.persona, "signup_at": self.signup_at,
            "first_event_at": self.first_event_at, "last_event_at": self.last_event_at,
            "churned": self.churned, "churn_at": self.churn_at,
        }


@dataclass(slots=True)
class UserPlan:
    index: int
    user_id: str
    persona: str
    signup_ms: int
    channel: str
    churned: bool
    sessions: list[Session] = field(default_factory=list)

    @property
    def n_events(self) -> int:
        return sum(s.n_events for s in self.sessions)

    def truth(self) -> Truth:
        first = format_rfc3339_ms(self.sessions[0].start_ms) if self.sessions else None
        last = format_rfc3339_ms(self.sessions[-1].end_ms) if self.sessions else None
        return Truth(
            user_id=self.user_id, persona=self.persona, signup_at=format_rfc3339_ms(self.signup_ms),
            first_event_at=first, last_event_at=last, churned=self.churned,
            churn_at=last if self.churned else None,
        )


def user_id_for(index: int) -> str:
    return f"u{index:06d}"


def assign_personas(users: int, mix: dict[str, float], rng: random.Random) -> list[str]:
    """Exact persona counts by largest remainder, then a seeded shuffle."""
    raw = {p: mix[p] * users for p in PERSONAS}
    counts = {p: math.floor(v) for p, v in raw.items()}
    short = users - sum(counts.values())
    for p in sorted(PERSONAS, key=lambda q: (-(raw[q] - counts[q]), PERSONAS.index(q)))[:short]:
        counts[p] += 1
    personas = [p for p in PERSONAS for _ in range(counts[p])]
    rng.shuffle(personas)
    return personas


class _Planner:
    """Builds one user's sessions; all randomness comes from the user's own RNG."""

    def __init__(self, rng: random.Random, start_ms: int, days: float) -> None:
        self.rng = rng
        self.start_ms = start_ms
        self.days = days
        self.end_ms = start_ms + int(days * MS_PER_DAY)
        self.n_days = max(1, math.ceil(days))
        self.epoch_day0 = start_ms // MS_PER_DAY
        self.sessions: list[Session] = []

    # -- day-level helpers -------------------------------------------------------------
    def day_start(self, d: int) -> int:
        return self.start_ms + d * MS_PER_DAY

    def is_weekend(self, d: int) -> bool:
        return weekday((self.day_start(d)) // MS_PER_DAY) >= 5

    def bernoulli_day(self, spec: PersonaSpec, d: int, p: float) -> bool:
        if self.is_weekend(d):
            p = min(0.97, p * WEEKEND_BOOST)
        return self.rng.random() < p

    # -- session building --------------------------------------------------------------
    def session_at(self, start: int, spec: PersonaSpec, intensity: float) -> Session:
        rng = self.rng
        lo, hi = spec.events_per_session
        n = rng.randint(lo, hi)
        n = max(1, round(n * intensity))
        n_events = n + 1  # plus session_start
        mean_gap_ms = spec.mean_gap_s * 1000 * (0.6 + 0.4 * intensity)
        duration = int(rng.gammavariate(n, mean_gap_ms)) + n  # >= 1 ms per gap
        return Session(start, duration, n_events, rng.getrandbits(63), spec.name)

    def active_day(self, d: int, spec: PersonaSpec, intensity: float = 1.0) -> None:
        rng = self.rng
        n = rng.choices((1, 2, 3), weights=spec.session_weights)[0]
        if self.is_weekend(d) and n < 3 and rng.random() < 0.25:
            n += 1
        if intensity < 1.0 and n > 1 and rng.random() > intensity:
            n -= 1
        base = self.day_start(d)
        starts = sorted(self.random_time_in_day(base) for _ in range(n))
        for s in starts:
            self.sessions.append(self.session_at(s, spec, intensity))

    def random_time_in_day(self, day_start_ms: int) -> int:
        hour = self.rng.choices(range(24), cum_weights=_HOUR_CUM)[0]
        return day_start_ms + hour * MS_PER_HOUR + self.rng.randrange(MS_PER_HOUR)

    def finish(self, not_before: int | None = None, not_after: int | None = None) -> list[Session]:
        """Sort, push overlapping sessions apart, drop anything outside the period."""
        lo = self.start_ms if not_before is None else max(self.start_ms, not_before)
        hi = self.end_ms if not_after is None else min(self.end_ms, not_after)
        out: list[Session] = []
        prev_end = -1
        for s in sorted(self.sessions, key=lambda x: x.start_ms):
            start = s.start_ms
            if start < prev_end + _MIN_SESSION_GAP_MS:
                start = prev_end + self.rng.randint(_MIN_SESSION_GAP_MS, 90 * MS_PER_MINUTE)
                s = Session(start, s.duration_ms, s.n_events, s.seed, s.spec)
            if s.start_ms < lo or s.end_ms >= hi:
                continue
            out.append(s)
            prev_end = s.end_ms
        return out

    def fallback_session(self, spec: PersonaSpec) -> list[Session]:
        """Guarantee at least one session for very short periods."""
        span = max(1, self.end_ms - self.start_ms)
        s = self.session_at(self.start_ms, spec, 0.3)
        max_dur = max(1, span // 4)
        dur = min(s.duration_ms, max_dur)
        start = self.start_ms + self.rng.randrange(max(1, span - dur - 1))
        return [Session(start, dur, s.n_events, s.seed, s.spec)]


def _plan_core(p: _Planner, spec: PersonaSpec) -> None:
    base = p.rng.uniform(0.7, 0.92) * spec.active_prob / 0.8
    for d in range(p.n_days):
        if p.bernoulli_day(spec, d, base):
            p.active_day(d, spec)


def _plan_casual(p: _Planner, spec: PersonaSpec, first_day: int = -1, until: int = -1) -> None:
    rng = p.rng
    lo, hi = spec.gap_days
    d = rng.randint(0, hi - 1) if first_day < 0 else first_day
    end = p.n_days if until < 0 else until
    while d < end:
        p.active_day(d, spec)
        gap = rng.randint(lo, hi) if rng.random() < 0.9 else rng.randint(hi + 1, hi + 4)
        if p.is_weekend(d + gap - 1) and rng.random() < 0.3:
            gap -= 1  # a weekend pulls the next visit a little earlier
        d += max(1, gap)


def _plan_lapsing(p: _Planner, spec: PersonaSpec) -> int:
    """Regular activity, then a 1-3 week decline, then a last session and silence for good."""
    rng = p.rng
    days = p.days
    decline = rng.uniform(7.0, 21.0)
    lo = min(decline + 3.0, days * 0.5)
    hi = max(lo, days - 2.0)
    churn_t = rng.uniform(lo, hi)
    if churn_t > days - 1.0:
        churn_t = max(0.0, days * 0.8)
    decline = min(decline, max(1.0, churn_t))
    decline_start = churn_t - decline
    churn_day = int(churn_t)
    base = rng.uniform(0.55, 0.8)
    for d in range(churn_day):
        if d < decline_start:
            factor = 1.0
        else:
            factor = max(0.1, 1.0 - 0.9 * (d + 0.5 - decline_start) / decline)
        if p.bernoulli_day(spec, d, base * factor):
            p.active_day(d, spec, intensity=factor)
    # the last visit: short, on the churn day, then nothing
    last_start = p.day_start(churn_day) + int((churn_t - churn_day) * MS_PER_DAY)
    last_start = min(last_start, p.end_ms - 2 * MS_PER_HOUR)
    last = p.session_at(max(p.start_ms, last_start), spec, 0.15)
    p.sessions = [s for s in p.sessions if s.start_ms < last.start_ms]
    p.sessions.append(last)
    return last.start_ms


def _plan_returning(p: _Planner, spec: PersonaSpec) -> tuple[int, int]:
    rng = p.rng
    days = p.days
    silence = float(rng.randint(15, 30))
    silence = min(silence, max(2.0, days * 0.45))
    lo = min(5.0, days * 0.15)
    hi = max(lo, days - silence - 3.0)
    silence_start = rng.uniform(lo, hi)
    silence_end = silence_start + silence
    base = rng.uniform(0.45, 0.7)
    back_day = math.ceil(silence_end)
    for d in range(p.n_days):
        if silence_start - 1 <= d < back_day:
            continue
        if d == back_day or p.bernoulli_day(spec, d, base):
            p.active_day(d, spec)
    s_lo = p.day_start(0) + int(silence_start * MS_PER_DAY)
    s_hi = p.day_start(back_day)
    p.sessions = [s for s in p.sessions if not (s_lo <= s.start_ms < s_hi)]
    return s_lo, s_hi


def _plan_new(p: _Planner, spec: PersonaSpec) -> tuple[int, bool]:
    """Sign up inside the period; stall after a few days, or grow into casual/core."""
    rng = p.rng
    signup_t = rng.uniform(0.0, p.days * 0.75)
    signup_day = int(signup_t)
    signup_ms = p.start_ms + int(signup_t * MS_PER_DAY)
    p.sessions.append(p.session_at(signup_ms, spec, 1.0))
    stalled = rng.random() < NEW_STALL_SHARE
    if stalled:
        stall_days = rng.uniform(1.0, 6.0)
        for d in range(signup_day + 1, min(p.n_days, signup_day + 1 + math.ceil(stall_days))):
            frac = (d - signup_day) / (stall_days + 1.0)
            factor = max(0.15, 1.0 - frac)
            if p.bernoulli_day(spec, d, 0.75 * factor):
                p.active_day(d, spec, intensity=factor)
        return signup_ms, True
    onboarding = signup_day + 1 + rng.randint(4, 8)
    for d in range(signup_day + 1, min(p.n_days, onboarding)):
        if p.bernoulli_day(spec, d, spec.active_prob):
            p.active_day(d, spec)
    if rng.random() < NEW_BECOMES_CORE:
        core = SPECS["core"]
        for d in range(onboarding, p.n_days):
            if p.bernoulli_day(core, d, core.active_prob * rng.uniform(0.85, 1.0)):
                p.active_day(d, core)
    else:
        _plan_casual(p, SPECS["casual"], first_day=onboarding + rng.randint(0, 2))
    return signup_ms, False


def plan_user(seed: int, index: int, persona: str, start_ms: int, days: float,
              featured: bool = False) -> UserPlan:
    """One user's full session plan, a pure function of (seed, index, persona, period).

    A `featured` user (a core user) also opens the period: a session a few minutes after its
    start, so a demo can name the user and find them at once."""
    rng = random.Random(f"engage-sim/{seed}/{index}")
    planner = _Planner(rng, start_ms, days)
    spec = SPECS[persona]
    if featured:
        planner.sessions.append(
            planner.session_at(start_ms + (index + 1) * 2 * MS_PER_MINUTE, spec, 1.0)
        )
    channel = rng.choices(CHANNELS, weights=(0.4, 0.33, 0.27))[0]
    signup_ms = start_ms - int(rng.uniform(14.0, 720.0) * MS_PER_DAY)
    churned = False
    not_before: int | None = None
    if persona == "core":
        _plan_core(planner, spec)
    elif persona == "casual":
        _plan_casual(planner, spec)
    elif persona == "lapsing":
        _plan_lapsing(planner, spec)
        churned = True
    elif persona == "returning":
        _plan_returning(planner, spec)
    elif persona == "new":
        signup_ms, churned = _plan_new(planner, spec)
        not_before = signup_ms
    else:  # pragma: no cover - guarded by normalise_mix
        raise ValueError(f"unknown persona {persona!r}")
    sessions = planner.finish(not_before=not_before)
    if not sessions:
        sessions = planner.fallback_session(spec)
        if persona == "new":
            signup_ms = sessions[0].start_ms
    if persona == "new":
        signup_ms = min(signup_ms, sessions[0].start_ms)
    return UserPlan(index=index, user_id=user_id_for(index), persona=persona,
                    signup_ms=signup_ms, channel=channel, churned=churned, sessions=sessions)


def plan_population(users: int, days: float, seed: int, start_ms: int,
                    mix: dict[str, float] | None = None, featured: int = 0) -> list[UserPlan]:
    """Every user's plan. Deterministic given the arguments. The first `featured` users
    (u000000, ...) are core users active from the period's first minutes."""
    if users < 0:
        raise ValueError("users must be >= 0")
    if days <= 0:
        raise ValueError("days must be > 0")
    weights = normalise_mix(mix)
    personas = assign_personas(users, weights, random.Random(f"engage-sim/{seed}/personas"))
    personas = ["core" if i < featured else p for i, p in enumerate(personas)]
    return [plan_user(seed, i, persona, start_ms, days, featured=i < featured)
            for i, persona in enumerate(personas)]
