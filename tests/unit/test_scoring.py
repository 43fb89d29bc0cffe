"""Dimensions, windows, streaks, tiers and event-time rules pinned to hand-computed values."""

from __future__ import annotations

import math

import pytest

from scoring.config import config_from_dict, load_config
from scoring.engine import ScoringEngine
from scoring.state import UserState
from scoring.state_codec import decode_state, encode_state
from scoring.tiers import TierPolicy
from tests.helpers import DAY, MINUTE, T0, ReadBack, ev

CONFIG = load_config()


def engine() -> ScoringEngine:
    return ReadBack(CONFIG)


def feed(eng: ScoringEngine, events: list, watermark: int = 0) -> UserState:  # type: ignore[type-arg]
    state = None
    for e in events:
        state = eng.apply(state, e, watermark).state
    assert state is not None
    return state


def test_one_like_decays_with_each_dimensions_half_life() -> None:
    eng = engine()
    state = feed(eng, [ev("u", "like", T0)])
    assert state.dims == [0.2, 0.5, 0.0, 0.0, 0.0]
    week_later = eng.dimensions.at(state.dims, state.last_ms, T0 + 7 * DAY)
    assert week_later[0] == pytest.approx(0.1)  # activity: half-life 7 days
    assert week_later[1] == pytest.approx(0.5 * 2 ** -0.5)  # social: half-life 14 days


def test_purchase_counts_by_amount_and_refund_subtracts() -> None:
    eng = engine()
    state = feed(eng, [ev("u", "purchase", T0, amount=100.0)])
    assert state.dims[4] == pytest.approx(2.0 + 0.05 * 100)
    assert state.monetary == 100.0
    state = eng.apply(state, ev("u", "refund", T0, amount=100.0), 0).state
    assert state is not None
    assert state.dims[4] == pytest.approx(0.0)
    assert state.monetary == 0.0


def test_composite_is_the_documented_saturating_sum() -> None:
    eng = engine()
    state = feed(eng, [ev("u", "like", T0)])
    expected = 100 * (0.30 * (1 - math.exp(-0.2 / 12)) + 0.20 * (1 - math.exp(-0.5 / 8)))
    assert eng.dimensions.composite(state.dims) == pytest.approx(expected)
    assert eng.dimensions.composite([1e9] * 5) == pytest.approx(100.0)
    assert eng.dimensions.composite([-5.0] * 5) == 0.0


def test_windows_active_days_streaks_and_gaps() -> None:
    eng = engine()
    days = [0, 1, 2, 5]
    state = feed(eng, [ev("u", "view", T0 + d * DAY + 3_600_000) for d in days])
    at_day5 = eng.view(state, T0 + 5 * DAY + 7_200_000)
    assert (at_day5.active_days_7, at_day5.active_days_28) == (4, 4)
    assert at_day5.events_7d == 4
    assert at_day5.current_streak == 1
    assert at_day5.longest_streak == 3
    assert at_day5.typical_gap_days == pytest.approx(5 / 3)
    at_day10 = eng.view(state, T0 + 10 * DAY + 3_600_000)
    assert (at_day10.active_days_7, at_day10.active_days_28) == (1, 4)  # days 4..10 hold day 5
    assert at_day10.stickiness == pytest.approx(0.25)
    assert at_day10.current_streak == 0
    assert at_day10.recency_days == pytest.approx(5.0)
    assert at_day10.silence_ratio == pytest.approx(5.0 / (5 / 3))
    at_day40 = eng.view(state, T0 + 40 * DAY)
    assert (at_day40.active_days_28, at_day40.events_28d) == (0, 0)


def test_streak_is_alive_until_a_day_is_missed() -> None:
    eng = engine()
    state = feed(eng, [ev("u", "checkin", T0 + d * DAY) for d in range(4)])
    assert eng.view(state, T0 + 3 * DAY + 1).current_streak == 4
    assert eng.view(state, T0 + 4 * DAY + 1).current_streak == 4  # today not over yet
    assert eng.view(state, T0 + 5 * DAY + 1).current_streak == 0


def test_counts_by_type_over_7_and_28_days() -> None:
    eng = engine()
    events = [ev("u", "like", T0), ev("u", "like", T0 + 10 * DAY), ev("u", "post", T0 + 20 * DAY)]
    record = eng.score_record(feed(eng, events), "u", T0 + 21 * DAY)
    assert record["windows"]["counts_7d"] == {"post": 1}
    assert record["windows"]["counts_28d"] == {"like": 2, "post": 1}
    assert record["rfm"]["frequency_28d"] == 3
    assert record["days_since_last_event"] == pytest.approx(1.0)


def test_tiers_promote_at_once_and_demote_after_grace_below_margin() -> None:
    policy = TierPolicy(CONFIG)  # bronze 0, silver 25, gold 50, vip 75; margin 5, grace 7d
    s = UserState()
    policy.update(s, 80.0, T0)
    assert policy.rank(s) == 3
    policy.update(s, 72.0, T0 + DAY)  # under 75 but within the margin: holds, no clock
    assert (policy.rank(s), s.below_since_ms) == (3, 0)
    policy.update(s, 60.0, T0 + 2 * DAY)  # below 70: the grace period starts
    assert (policy.rank(s), s.below_since_ms) == (3, T0 + 2 * DAY)
    policy.update(s, 60.0, T0 + 8 * DAY)  # 6 days: still vip
    assert policy.rank(s) == 3
    assert policy.next_due_ms(s) == T0 + 9 * DAY
    policy.update(s, 60.0, T0 + 9 * DAY)  # 7 days below: demoted to gold (60 >= 50 - 5)
    assert (policy.rank(s), s.below_since_ms) == (2, 0)


def test_recovering_within_the_grace_period_keeps_the_tier() -> None:
    policy = TierPolicy(CONFIG)
    s = UserState()
    policy.update(s, 55.0, T0)
    policy.update(s, 30.0, T0 + DAY)
    policy.update(s, 48.0, T0 + 3 * DAY)  # back within the margin
    policy.update(s, 30.0, T0 + 4 * DAY)  # a new grace period starts here
    policy.update(s, 30.0, T0 + 10 * DAY)
    assert policy.rank(s) == 2
    policy.update(s, 30.0, T0 + 11 * DAY)
    assert policy.rank(s) == 1


def test_duplicate_event_id_changes_nothing() -> None:
    eng = engine()
    first = ev("u", "like", T0, event_id="same")
    state = feed(eng, [first])
    before = encode_state(state)
    outcome = eng.apply(state, ev("u", "like", T0, event_id="same"), 0)
    assert outcome.status == "duplicate"
    assert encode_state(state) == before


def test_burst_beyond_the_cap_is_not_counted() -> None:
    eng = engine()  # burst_cap_per_minute = 20
    state = None
    statuses = []
    for i in range(25):
        out = eng.apply(state, ev("u", "like", T0 + i * 1000), 0)
        state = out.state
        statuses.append(out.status)
    assert statuses.count("scored") == 20 and statuses.count("capped") == 5
    assert state is not None and state.events == 20 and state.capped == 5
    assert state.dims[1] == pytest.approx(20 * 0.5, rel=1e-3)
    assert eng.apply(state, ev("u", "like", T0 + MINUTE), 0).status == "scored"  # next minute


def test_events_before_the_watermark_are_late_and_change_nothing() -> None:
    eng = engine()
    state = feed(eng, [ev("u", "like", T0)])
    before = encode_state(state)
    outcome = eng.apply(state, ev("u", "like", T0 - 1), T0)
    assert outcome.status == "late"
    assert encode_state(state) == before


def test_out_of_order_within_lateness_equals_in_order() -> None:
    eng = engine()
    a, b = ev("u", "share", T0), ev("u", "purchase", T0 + 30 * MINUTE, amount=20.0)
    in_order = feed(eng, [a, b])
    reordered = feed(eng, [b, a], watermark=T0 - 1)
    assert reordered.dims == pytest.approx(in_order.dims)
    assert (reordered.first_ms, reordered.last_ms) == (in_order.first_ms, in_order.last_ms)
    assert reordered.day_counts == in_order.day_counts


def test_state_round_trips_and_stays_compact() -> None:
    eng = engine()
    events = [ev("u", t, T0 + i * 3 * 3_600_000) for i, t in
              enumerate(["session_start", "view", "like", "comment", "post", "purchase"] * 10)]
    state = None
    for e in events:  # the watermark follows event time, as on a partition
        state = eng.apply(state, e, e.ts_ms - eng.lateness_ms).state
    assert state is not None
    raw = encode_state(state)
    assert decode_state(raw) == state
    assert len(raw) < 576  # 544: the user's population entry (day and bins) takes 38 bytes


def test_half_life_is_configurable() -> None:
    eng = ReadBack(config_from_dict({"scoring": {"dimensions": {"activity": {
        "half_life_days": 1.0}}}}))
    state = feed(eng, [ev("u", "session_start", T0)])
    assert eng.dimensions.at(state.dims, state.last_ms, T0 + DAY)[0] == pytest.approx(0.5)
