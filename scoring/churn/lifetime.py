"""Lifetime purchase behaviour in constant-size per-user state, and the churn features on it.

Daily-app windows (7/28 days, streaks) say little about a customer who buys every few months.
What predicts a return within a horizon is how often *this* customer comes back, how long
they have been a customer, and how long the current silence is next to their own rhythm —
the quantities BG/NBD is built on. Everything here is kept per user in a few numbers updated
in O(1) per event; no event list is kept.

Time is counted in **active days** (UTC days with at least one counted event), as BG/NBD
counts purchase periods: x = active_days - 1 repeat days, t_x = last_day - first_day,
T = now - first_day (days). The gaps between consecutive active days feed a running
variance (Welford); their mean is (last_day - first_day) / x and needs no field. Recent
activity is two exponentially decayed counts of active days whose time constants scale with
the churn horizon (1x and 4x), so "recent" means the same thing whatever the horizon.

Updates do not depend on arrival order: a late day that falls between two known active days
splits their gap (Welford removal and insertions), and decayed counts are sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import msgspec

from scoring.churn.bgnbd import BgNbdParams, expected_purchases_if_alive
from scoring.churn.mbgnbd import mbgnbd_features
from scoring.churn.priors import PopulationParams
from scoring.churn.state import RECENT_DAYS, ChurnState
from scoring.timeutil import MS_PER_DAY

LONG_PULSE_HORIZONS = 4.0  # the slow decayed count's time constant, in horizons
LOGIT_CLIP = 12.0  # BG/NBD log-odds are clipped here (P(alive) = 1 for one-time buyers)


class LifetimeFields(Protocol):
    """What the lifetime updates and features read and write: LifetimeState (research
    harnesses) and the engine's ChurnState both have these fields."""

    first_day: int
    last_day: int
    last_ms: int
    active_days: int
    gap_m2: float
    pulse_short: float
    pulse_long: float
    spend: float
    paid: int


class LifetimeState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Per-user lifetime summary: 118 bytes as a keyed msgpack map (54 array-like) for the
    median CDNOW customer; the four fields UserState lacks add about 30 bytes array-like.

    `first_day`, `last_day`, `last_ms`, `active_days` and `spend` mirror fields UserState
    already keeps (first_day, anchor_day, last_ms, active_days, monetary); `gap_m2`,
    `pulse_short`, `pulse_long` and `paid` are the new ones.
    """

    first_day: int = -1  # UTC day number of the first counted event (-1: none yet)
    last_day: int = -1  # latest active day
    last_ms: int = 0  # latest counted event (recency; the anchor of observation points)
    active_days: int = 0  # distinct active days; BG/NBD frequency x = active_days - 1
    gap_m2: float = 0.0  # Welford sum of squared deviations of gaps between active days
    pulse_short: float = 0.0  # active days decayed with tau = horizon, as of last_day
    pulse_long: float = 0.0  # active days decayed with tau = 4 x horizon, as of last_day
    spend: float = 0.0  # lifetime amount
    paid: int = 0  # counted events carrying an amount (mean spend = spend / paid)


@dataclass(frozen=True, slots=True)
class LifetimeConfig:
    """The horizon the features are scaled to (the churn label's horizon)."""

    horizon_days: float

    def __post_init__(self) -> None:
        if not self.horizon_days > 0:
            raise ValueError("horizon_days must be > 0")

    @property
    def tau_short_days(self) -> float:
        return self.horizon_days

    @property
    def tau_long_days(self) -> float:
        return self.horizon_days * LONG_PULSE_HORIZONS


def _gap_mean(s: LifetimeFields) -> float:
    repeats = s.active_days - 1
    return (s.last_day - s.first_day) / repeats if repeats > 0 else 0.0


def _welford_add(s: LifetimeFields, n_before: int, mean_before: float, gap: float) -> float:
    """Add one gap to (n_before, mean_before, gap_m2); returns the new mean."""
    mean = mean_before + (gap - mean_before) / (n_before + 1)
    s.gap_m2 += (gap - mean_before) * (gap - mean)
    return mean


def _welford_remove(s: LifetimeFields, n_before: int, mean_before: float, gap: float) -> float:
    """Remove one gap (the inverse of _welford_add); returns the new mean."""
    if n_before <= 1:
        s.gap_m2 = 0.0
        return 0.0
    mean = (n_before * mean_before - gap) / (n_before - 1)
    s.gap_m2 = max(0.0, s.gap_m2 - (gap - mean_before) * (gap - mean))
    return mean


def add_active_day(
    s: LifetimeFields,
    day: int,
    config: LifetimeConfig,
    previous_day: int | None = None,
    next_day: int | None = None,
) -> None:
    """Record a *new* active day. In order, only `day` is needed. A late day between two
    known active days must name them (UserState.active_bits has them within 64 days) so their
    gap is split; a late day before `first_day` becomes the first.
    """
    n = s.active_days - 1  # gaps so far
    if s.active_days == 0:
        s.first_day = s.last_day = day
        s.active_days = 1
        s.pulse_short = s.pulse_long = 1.0
        return
    mean = _gap_mean(s)
    if day > s.last_day:
        _welford_add(s, n, mean, float(day - s.last_day))
        elapsed = day - s.last_day
        s.pulse_short = s.pulse_short * math.exp(-elapsed / config.tau_short_days) + 1.0
        s.pulse_long = s.pulse_long * math.exp(-elapsed / config.tau_long_days) + 1.0
        s.last_day = day
    else:
        if day == s.last_day:
            raise ValueError(f"day {day} is already active")
        if day < s.first_day:
            _welford_add(s, n, mean, float(s.first_day - day))
            s.first_day = day
        else:
            if previous_day is None or next_day is None or not previous_day < day < next_day:
                raise ValueError(
                    "a late day inside the history needs previous_day < day < next_day"
                )
            mean = _welford_remove(s, n, mean, float(next_day - previous_day))
            mean = _welford_add(s, n - 1, mean, float(day - previous_day))
            _welford_add(s, n, mean, float(next_day - day))
        age = s.last_day - day
        s.pulse_short += math.exp(-age / config.tau_short_days)
        s.pulse_long += math.exp(-age / config.tau_long_days)
    s.active_days += 1


def observe(s: LifetimeFields, ts_ms: int, amount: float | None, config: LifetimeConfig) -> None:
    """One counted event at `ts_ms`, in time order (a late day goes through add_active_day)."""
    day = ts_ms // MS_PER_DAY
    if s.active_days and day < s.last_day:
        raise ValueError(f"event day {day} is before the latest active day {s.last_day}")
    if s.active_days == 0 or day > s.last_day:
        add_active_day(s, day, config)
    s.last_ms = max(s.last_ms, ts_ms)
    if amount is not None:
        s.spend += amount
        s.paid += 1


_RECENT_MASK = (1 << RECENT_DAYS) - 1


def record_return(s: ChurnState, ts_ms: int, amount: float, config: LifetimeConfig) -> None:
    """One return at `ts_ms` with its signed `amount` (purchases +, refunds -, else 0), in
    any order within the allowed lateness: the state is the same whatever the arrival order.

    `recent_days` holds the return days of the last RECENT_DAYS days and `before_recent` the
    latest one before them, so a late day finds the neighbours whose gap it splits.
    """
    day = ts_ms // MS_PER_DAY
    if s.active_days == 0:
        add_active_day(s, day, config)
        s.recent_days, s.before_recent = 1, -1
    elif day > s.last_day:
        shift = day - s.last_day
        bits = s.recent_days
        lost = bits >> max(0, RECENT_DAYS - shift)  # bits that leave the window
        if lost:
            newest = max(0, RECENT_DAYS - shift) + ((lost & -lost).bit_length() - 1)
            s.before_recent = s.last_day - newest
        s.recent_days = ((bits << shift) | 1) & _RECENT_MASK if shift < RECENT_DAYS else 1
        add_active_day(s, day, config)
    elif day < s.last_day:
        age = s.last_day - day
        bits = s.recent_days
        # a day older than the bits cannot come within the allowed lateness (<= 7 days)
        if age < RECENT_DAYS and not bits >> age & 1:
            later = bits & ((1 << age) - 1)  # bit i < age: a later return day
            earlier = bits >> (age + 1)  # bit j: return day `day - 1 - j`
            next_day = s.last_day - (later.bit_length() - 1)
            if earlier:
                previous: int | None = day - 1 - ((earlier & -earlier).bit_length() - 1)
            else:
                previous = s.before_recent if s.before_recent >= 0 else None
            if previous is None:
                add_active_day(s, day, config)  # before the first return day
            else:
                add_active_day(s, day, config, previous_day=previous, next_day=next_day)
            s.recent_days = bits | (1 << age)
    if ts_ms > s.last_ms:
        s.last_ms = ts_ms
    if amount:
        s.spend += amount
        if amount > 0:
            s.paid += 1


# ---- features -----------------------------------------------------------------------------

LIFETIME_FEATURE_NAMES: tuple[str, ...] = (
    "log_recency_days",
    "recency_horizons",
    "log_repeat_days",
    "log_age_days",
    "one_timer",
    "last_active_share",
    "log_silence_per_gap",
    "gap_cv",
    "log_rate_per_horizon",
    "log_pulse_short",
    "log_pulse_long",
    "log_spend_mean",
    "log_spend_total",
    "bgnbd_logit_return",
    "bgnbd_log_expected",
    "bgnbd_logit_alive",
    "mbgnbd_logit_return",
    "mbgnbd_logit_alive",
)


@dataclass(frozen=True, slots=True)
class Summary:
    """BG/NBD's summary of a customer at a moment, in days."""

    frequency: int
    recency: float
    age: float


def summary_at(s: LifetimeFields, now_ms: int) -> Summary:
    """(x, t_x, T) in days at `now_ms`; T counts from the start of the first active day."""
    if s.active_days == 0:
        raise ValueError("no counted event yet")
    age = max(now_ms / MS_PER_DAY - s.first_day, float(s.last_day - s.first_day))
    return Summary(s.active_days - 1, float(s.last_day - s.first_day), age)


def _clip(value: float, bound: float) -> float:
    return max(-bound, min(bound, value))


def lifetime_features(
    s: LifetimeFields, now_ms: int, config: LifetimeConfig, params: PopulationParams | None
) -> list[float]:
    """The vector named by LIFETIME_FEATURE_NAMES at `now_ms` (event time).

    Without parameters (none fitted yet) the BG/NBD and MBG/NBD features are 0. On the hot
    path (every example and prediction): the BG/NBD closed forms share their logarithms here
    rather than calling scoring.churn.bgnbd's checked scalar functions one by one.
    """
    h = config.horizon_days
    summary = summary_at(s, now_ms)
    x, t_x, big_t = summary.frequency, summary.recency, summary.age
    recency = max(0.0, (now_ms - s.last_ms) / MS_PER_DAY)
    now_days = now_ms / MS_PER_DAY
    since_last_day = max(0.0, now_days - s.last_day)
    mean_gap = _gap_mean(s)
    gap_cv = 0.0
    if x >= 2 and mean_gap > 0:
        gap_cv = min(5.0, math.sqrt(s.gap_m2 / x) / mean_gap)
    log1p, exp = math.log1p, math.exp
    features = [
        log1p(recency),
        min(recency / h, 12.0),
        log1p(x),
        log1p(big_t),
        1.0 if x == 0 else 0.0,
        t_x / big_t if big_t >= 1.0 else 1.0,
        log1p(recency / max(mean_gap, 1.0)) if x > 0 else 0.0,
        gap_cv,
        log1p(h * x / (big_t + h)),
        log1p(s.pulse_short * exp(-since_last_day / config.tau_short_days)),
        log1p(s.pulse_long * exp(-since_last_day / config.tau_long_days)),
        log1p(max(0.0, s.spend) / s.paid) if s.paid else 0.0,
        log1p(max(0.0, s.spend)),
    ]
    if params is None:
        return [*features, 0.0, 0.0, 0.0, 0.0, 0.0]
    mbg = (0.0, 0.0) if params.mbgnbd is None else mbgnbd_features(params.mbgnbd, h, x, t_x, big_t)
    return [*features, *bgnbd_features(params.bgnbd, h, x, t_x, big_t), *mbg]


def bgnbd_features(
    p: BgNbdParams, horizon: float, x: int, t_x: float, big_t: float
) -> tuple[float, float, float]:
    """(log-odds of a return within the horizon, log1p(expected returns), logit P(alive)),
    the first and last clipped to +-LOGIT_CLIP (scoring.churn.bgnbd, eq. 9 and 10)."""
    r_x = p.r + x
    log_alpha_t = math.log(p.alpha + big_t)
    if x == 0:
        alive_logit = LOGIT_CLIP  # one-time buyers are alive with probability 1
        alive = 1.0
    else:
        against = (
            math.log(p.a) - math.log(p.b + x - 1.0) + r_x * (log_alpha_t - math.log(p.alpha + t_x))
        )
        alive_logit = _clip(-against, LOGIT_CLIP)
        alive = 1.0 / (1.0 + math.exp(against)) if against < 700 else 0.0
    silent_if_alive = r_x * (log_alpha_t - math.log(p.alpha + big_t + horizon))
    p_silent = 1.0 - alive * -math.expm1(silent_if_alive)
    p_silent = min(max(p_silent, 1e-12), 1.0 - 1e-12)
    expected = expected_purchases_if_alive(p, horizon, x, big_t) * alive if p.a != 1.0 else 0.0
    return (
        _clip(math.log((1.0 - p_silent) / p_silent), LOGIT_CLIP),
        math.log1p(max(0.0, expected)),
        alive_logit,
    )
