"""Lifetime state: O(1) updates, order independence, features computed by hand."""

from __future__ import annotations

import math

import msgspec
import pytest

from scoring.churn.bgnbd import BgNbdParams, probability_no_purchase
from scoring.churn.lifetime import (
    LIFETIME_FEATURE_NAMES,
    LifetimeConfig,
    LifetimeState,
    add_active_day,
    lifetime_features,
    observe,
    summary_at,
)
from scoring.churn.mbgnbd import MbgNbdParams
from scoring.churn.mbgnbd import probability_alive as mbg_alive
from scoring.churn.mbgnbd import probability_no_purchase as mbg_no_purchase
from scoring.churn.priors import PopulationParams
from scoring.timeutil import MS_PER_DAY

CONFIG = LifetimeConfig(horizon_days=10.0)
D0 = 20_000  # an epoch day


def _state(days: list[int], amount: float | None = 20.0) -> LifetimeState:
    s = LifetimeState()
    for d in days:
        observe(s, (D0 + d) * MS_PER_DAY + 3_600_000, amount, CONFIG)
    return s


def test_events_update_counts_gaps_pulses_and_spend() -> None:
    s = _state([0, 0, 3, 10])  # two events on day 0: one active day
    assert (s.first_day, s.last_day, s.active_days, s.paid, s.spend) == (D0, D0 + 10, 3, 4, 80.0)
    assert s.last_ms == (D0 + 10) * MS_PER_DAY + 3_600_000
    assert s.gap_m2 == pytest.approx(8.0)  # gaps 3 and 7 around their mean 5
    assert s.pulse_short == pytest.approx((math.exp(-3 / 10) + 1) * math.exp(-7 / 10) + 1)
    assert s.pulse_long == pytest.approx((math.exp(-3 / 40) + 1) * math.exp(-7 / 40) + 1)
    summary = summary_at(s, (D0 + 12) * MS_PER_DAY)
    assert (summary.frequency, summary.recency, summary.age) == (2, 10.0, 12.0)


def test_a_late_day_gives_the_state_of_the_in_order_stream() -> None:
    in_order = _state([0, 4, 9, 15])
    late = _state([0, 9, 15])
    add_active_day(late, D0 + 4, CONFIG, previous_day=D0, next_day=D0 + 9)
    earliest = _state([4, 9, 15])
    add_active_day(earliest, D0, CONFIG)
    for other in (late, earliest):
        assert (other.first_day, other.last_day, other.active_days) == (
            in_order.first_day, in_order.last_day, in_order.active_days)
        assert other.gap_m2 == pytest.approx(in_order.gap_m2, rel=1e-12)
        assert other.pulse_short == pytest.approx(in_order.pulse_short, rel=1e-12)
        assert other.pulse_long == pytest.approx(in_order.pulse_long, rel=1e-12)


def test_out_of_order_misuse_is_refused() -> None:
    s = _state([0, 9])
    with pytest.raises(ValueError, match="before the latest active day"):
        observe(s, (D0 + 4) * MS_PER_DAY, None, CONFIG)
    with pytest.raises(ValueError, match="previous_day < day < next_day"):
        add_active_day(s, D0 + 4, CONFIG)
    with pytest.raises(ValueError, match="already active"):
        add_active_day(s, D0 + 9, CONFIG)
    with pytest.raises(ValueError, match="no counted event"):
        summary_at(LifetimeState(), 0)


def test_features_by_hand_without_bgnbd() -> None:
    s = _state([0, 3, 10])
    now = (D0 + 15) * MS_PER_DAY + 3_600_000  # 5 days after the last event
    f = dict(zip(LIFETIME_FEATURE_NAMES, lifetime_features(s, now, CONFIG, None), strict=True))
    age = 15 + 1 / 24
    assert f["log_recency_days"] == pytest.approx(math.log1p(5.0))
    assert f["recency_horizons"] == pytest.approx(0.5)
    assert f["log_repeat_days"] == pytest.approx(math.log1p(2))
    assert f["log_age_days"] == pytest.approx(math.log1p(age))
    assert f["one_timer"] == 0.0
    assert f["last_active_share"] == pytest.approx(10 / age)
    assert f["log_silence_per_gap"] == pytest.approx(math.log1p(5.0 / 5.0))
    assert f["gap_cv"] == pytest.approx(math.sqrt(8.0 / 2) / 5.0)
    assert f["log_rate_per_horizon"] == pytest.approx(math.log1p(10 * 2 / (age + 10)))
    decay = math.exp(-(5 + 1 / 24) / 10)
    assert f["log_pulse_short"] == pytest.approx(math.log1p(s.pulse_short * decay))
    assert f["log_spend_mean"] == pytest.approx(math.log1p(20.0))
    assert f["log_spend_total"] == pytest.approx(math.log1p(60.0))
    assert (f["bgnbd_logit_return"], f["bgnbd_log_expected"], f["bgnbd_logit_alive"]) == (0, 0, 0)
    assert (f["mbgnbd_logit_return"], f["mbgnbd_logit_alive"]) == (0, 0)


def test_bgnbd_features_and_one_timers() -> None:
    bg, mbg = BgNbdParams(0.8, 70.0, 0.8, 2.4), MbgNbdParams(0.8, 70.0, 0.8, 2.4)
    params = PopulationParams(bg, mbg)
    one = _state([0], amount=None)
    now = (D0 + 30) * MS_PER_DAY
    f = dict(zip(LIFETIME_FEATURE_NAMES, lifetime_features(one, now, CONFIG, params), strict=True))
    p0 = probability_no_purchase(bg, 10.0, 0, 0.0, 30.0)
    assert f["bgnbd_logit_return"] == pytest.approx(math.log((1 - p0) / p0))
    assert f["bgnbd_logit_alive"] == 12.0  # P(alive) = 1 for one-time buyers: clipped
    # MBG/NBD: a one-time buyer may have dropped out after the first purchase
    m0 = mbg_no_purchase(mbg, 10.0, 0, 0.0, 30.0)
    alive = mbg_alive(mbg, 0, 0.0, 30.0)
    assert 0.0 < alive < 1.0 and m0 > p0
    assert f["mbgnbd_logit_return"] == pytest.approx(math.log((1 - m0) / m0))
    assert f["mbgnbd_logit_alive"] == pytest.approx(math.log(alive / (1 - alive)))
    no_mbg = lifetime_features(one, now, CONFIG, PopulationParams(bg))
    assert no_mbg[-2:] == [0.0, 0.0] and no_mbg[:-2] == list(f.values())[:-2]
    assert (f["one_timer"], f["log_silence_per_gap"], f["gap_cv"], f["log_spend_mean"]) == (
        1.0, 0.0, 0.0, 0.0)


def test_state_is_small() -> None:
    s = _state(list(range(0, 400, 7)), amount=19.99)
    assert len(msgspec.msgpack.encode(s)) <= 160
    assert len(msgspec.msgpack.encode(LifetimeState())) == 1
