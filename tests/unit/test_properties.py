"""Property tests of the scoring core (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.config import config_from_dict
from scoring.engine import ScoringEngine
from scoring.events import Event
from scoring.state import UserState
from tests.helpers import DAY, T0, ReadBack, ev

# Lateness of 7 days and events within 6 days: every arrival order is within the lateness.
# The burst cap is raised so that it cannot bind (which events a cap drops is order-bound).
CONFIG = config_from_dict(
    {"scoring": {"lateness_seconds": 7 * 86_400, "burst_cap_per_minute": 10_000}}
)
TYPES = sorted(CONFIG.event_types)

event_specs = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(TYPES),
        st.integers(min_value=0, max_value=6 * DAY - 1),
        st.floats(min_value=0, max_value=500, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


def build(specs: list[tuple[str, str, int, float]]) -> list[Event]:
    return [
        ev(user, etype, T0 + offset, event_id=f"id{i}", amount=round(amount, 2))
        for i, (user, etype, offset, amount) in enumerate(specs)
    ]


def run(engine: ScoringEngine, events: list[Event]) -> dict[str, UserState]:
    """Arrival order as given; the watermark follows the largest event time seen."""
    states: dict[str, UserState] = {}
    newest = 0
    for e in events:
        watermark = max(0, newest - engine.lateness_ms)
        out = engine.apply(states.get(e.user_id), e, watermark)
        assert out.status in ("scored", "duplicate")
        assert out.state is not None
        states[e.user_id] = out.state
        newest = max(newest, e.ts_ms)
    return states


def semantic(state: UserState) -> tuple[object, ...]:
    """Everything that scores and features depend on (not the dedupe bookkeeping)."""
    return (
        state.first_ms,
        state.last_ms,
        state.anchor_day,
        state.first_day,
        state.active_bits,
        state.active_days,
        state.longest_streak,
        state.day_counts,
        state.lifetime,
        state.events,
        {k: round(v, 6) for k, v in state.day_amounts.items()},
        round(state.monetary, 6),
    )


@settings(max_examples=150, deadline=None)
@given(event_specs, st.randoms(use_true_random=False))
def test_shuffled_arrival_within_lateness_gives_identical_state(
    specs: list[tuple[str, str, int, float]], rnd: random.Random
) -> None:
    engine = ReadBack(CONFIG)
    events = build(specs)
    in_order = run(engine, sorted(events, key=lambda e: e.ts_ms))
    shuffled_events = list(events)
    rnd.shuffle(shuffled_events)
    shuffled = run(engine, shuffled_events)
    assert in_order.keys() == shuffled.keys()
    for user, state in in_order.items():
        other = shuffled[user]
        assert semantic(other) == semantic(state)
        assert other.dims == pytest.approx(state.dims, rel=1e-9, abs=1e-9)
        now = state.last_ms + DAY
        assert engine.score_record(other, user, now)["engagement_score"] == pytest.approx(
            engine.score_record(state, user, now)["engagement_score"], abs=1e-6
        )


@settings(max_examples=100, deadline=None)
@given(event_specs, st.randoms(use_true_random=False))
def test_duplicates_are_idempotent(
    specs: list[tuple[str, str, int, float]], rnd: random.Random
) -> None:
    engine = ReadBack(CONFIG)
    events = sorted(build(specs), key=lambda e: e.ts_ms)
    once = run(ReadBack(CONFIG), events)
    retried = [e for e in events for _ in range(rnd.randint(1, 3))]  # producer retries
    twice = run(engine, retried)
    for user, state in once.items():
        assert semantic(twice[user]) == semantic(state)
        assert twice[user].dims == pytest.approx(state.dims)


@settings(max_examples=100, deadline=None)
@given(event_specs, st.lists(st.integers(min_value=0, max_value=400 * DAY), min_size=2, max_size=8))
def test_scores_decay_monotonically_and_stay_in_range(
    specs: list[tuple[str, str, int, float]], offsets: list[int]
) -> None:
    engine = ReadBack(CONFIG)
    states = run(engine, sorted(build(specs), key=lambda e: e.ts_ms))
    for user, state in states.items():
        previous = 101.0
        for offset in sorted(offsets):
            score = engine.score_record(state, user, state.last_ms + offset)["engagement_score"]
            assert 0.0 <= score <= 100.0
            assert score <= previous + 1e-9
            previous = score


def churn_semantic(state: UserState) -> tuple[object, ...]:
    """The churn module's lifetime summary: what features and BG/NBD read."""
    c = state.churn
    return (c.first_day, c.last_day, c.last_ms, c.active_days, c.paid, c.recent_days,
            c.before_recent, c.key, round(c.gap_m2, 6), round(c.pulse_short, 9),
            round(c.pulse_long, 9), round(c.spend, 6))


@settings(max_examples=150, deadline=None)
@given(event_specs, st.randoms(use_true_random=False))
def test_the_churn_lifetime_summary_does_not_depend_on_arrival_order(
    specs: list[tuple[str, str, int, float]], rnd: random.Random
) -> None:
    from scoring.churn.labels import ChurnLabels

    config = config_from_dict({
        "scoring": {"lateness_seconds": 7 * 86_400, "burst_cap_per_minute": 10_000},
        "churn": {"horizon_days": 10.0},
    })
    engine = ReadBack(config, churn=ChurnLabels(config))
    events = build(specs)
    in_order = run(engine, sorted(events, key=lambda e: e.ts_ms))
    shuffled_events = list(events)
    rnd.shuffle(shuffled_events)
    shuffled = run(engine, shuffled_events)
    for user, state in in_order.items():
        assert churn_semantic(shuffled[user]) == churn_semantic(state)
