"""Churn labels (edges, via ChurnLabels and via the engine), signed artifacts, the model
registry, and the trainer / predictor."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest
from river import base as river_base

from scoring.churn import registry
from scoring.churn.artifacts import (
    MAGIC,
    ArtifactRejected,
    load_artifact,
    read_metadata,
    sign_artifact,
)
from scoring.churn.labels import ChurnLabels
from scoring.churn.state import ChurnState
from scoring.churn.trainer import ChurnTrainer, ModelSlot, Predictor, as_features
from scoring.config import ConfigError, EngageConfig, config_from_dict, load_config
from scoring.engine import ScoringEngine
from scoring.events import Event
from scoring.features import FEATURE_NAMES
from scoring.state import UserState
from scoring.state_codec import encode_state
from scoring.timeutil import format_rfc3339_ms
from scoring.triggers.admission import TriggerRules
from tests.helpers import ReadBack

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 86_400_000
HORIZON = 14 * DAY  # the default churn.horizon_days
OBS = T0 + 10 * HOUR  # an observation point: 10:00 on day 0


def vec(seed: float = 0.0) -> list[float]:
    return [seed + i for i in range(len(FEATURE_NAMES))]


class FeaturesAt:
    """A features_at(t) callable recording the times the labeller asked about; the vector it
    returns encodes t (hours since T0), so an example shows which moment it describes."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, t: int) -> list[float]:
        self.calls.append(t)
        return vec((t - T0) / HOUR)


def features_of(t: int) -> dict[str, float]:
    """The example features FeaturesAt yields for an observation at t."""
    return dict(zip(FEATURE_NAMES, vec((t - T0) / HOUR), strict=True))


# ---------------------------------------------------------------------------------------------
# Labels, directly on ChurnLabels
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def labels() -> ChurnLabels:
    return AsRead(load_config().churn)


class AsRead(ChurnLabels):
    """Examples as the trainer reads them off the topic (JSON objects)."""

    def on_activity(self, *args: Any, **kwargs: Any) -> Any:
        return msgspec.to_builtins(super().on_activity(*args, **kwargs))

    def on_watermark(self, *args: Any, **kwargs: Any) -> Any:
        return msgspec.to_builtins(super().on_watermark(*args, **kwargs))


def _open(labels: ChurnLabels, at: int = OBS) -> ChurnState:
    """A state with one observation point, taken by a sweep at `at`."""
    cs = ChurnState()
    feats = FeaturesAt()
    assert labels.on_watermark(cs, "u1", at, feats) == []
    assert cs.obs == [at]
    assert feats.calls == []  # features are recomputed at resolution, never stored
    return cs


def test_a_sweep_opens_an_observation_point_at_the_watermark(labels: ChurnLabels) -> None:
    cs = ChurnState()
    feats = FeaturesAt()
    assert labels.on_watermark(cs, "u1", OBS, feats) == []
    assert (cs.obs, cs.last_obs_day, cs.churned_ms, cs.examples) == ([OBS], OBS // DAY, 0, 0)
    assert feats.calls == []
    assert labels.next_due_ms(cs) == OBS + HORIZON + 1


def test_an_event_opens_no_observation_point(labels: ChurnLabels) -> None:
    cs = ChurnState()
    feats = FeaturesAt()
    assert labels.on_activity(cs, "u1", OBS, feats) == []
    assert (cs.obs, cs.last_obs_day, cs.examples) == ([], -1, 0)
    assert feats.calls == []
    assert labels.next_due_ms(cs) is None


def test_return_exactly_at_the_horizon_is_label_0(labels: ChurnLabels) -> None:
    cs = _open(labels)
    feats = FeaturesAt()
    examples = labels.on_activity(cs, "u1", OBS + HORIZON, feats)
    assert len(examples) == 1
    ex = examples[0]
    assert ex["label"] == 0
    assert ex["schema"] == "churn-example/v1"
    assert ex["user_id"] == "u1"
    assert ex["observed_at"] == format_rfc3339_ms(OBS) == "2026-01-01T10:00:00.000Z"
    assert ex["resolved_at"] == format_rfc3339_ms(OBS + HORIZON) == "2026-01-15T10:00:00.000Z"
    # the features of the observation moment, not of the return
    assert feats.calls == [OBS]
    assert ex["features"] == features_of(OBS)
    assert (cs.obs, cs.churned_ms, cs.examples) == ([], 0, 1)
    # the return itself opens nothing: the next sweep does
    assert labels.next_due_ms(cs) is None


def test_return_one_ms_after_the_horizon_is_label_1_resolved_at_the_deadline(
    labels: ChurnLabels,
) -> None:
    cs = _open(labels)
    feats = FeaturesAt()
    examples = labels.on_activity(cs, "u1", OBS + HORIZON + 1, feats)
    assert [(e["label"], e["resolved_at"]) for e in examples] == [
        (1, format_rfc3339_ms(OBS + HORIZON))
    ]
    assert examples[0]["features"] == features_of(OBS)
    assert feats.calls == [OBS]
    # they are back: not flagged churned, nothing open
    assert (cs.obs, cs.churned_ms, cs.examples) == ([], 0, 1)


@pytest.mark.parametrize("offset", [-DAY, -HOUR, -1, 0])
def test_an_event_at_or_before_the_observation_time_discards_it(
    labels: ChurnLabels, offset: int
) -> None:
    # it is not a return, but it changes the state the point's features come from
    cs = _open(labels)
    feats = FeaturesAt()
    assert labels.on_activity(cs, "u1", OBS + offset, feats) == []
    assert cs.obs == []
    assert feats.calls == []
    assert cs.examples == 0
    assert labels.next_due_ms(cs) is None


def test_any_event_after_the_observation_time_is_a_return_even_the_same_day(
    labels: ChurnLabels,
) -> None:
    cs = _open(labels)
    examples = labels.on_activity(cs, "u1", OBS + 1, FeaturesAt())
    assert [(e["label"], e["resolved_at"]) for e in examples] == [(0, format_rfc3339_ms(OBS + 1))]
    assert cs.obs == []


def test_watermark_at_the_deadline_does_not_resolve(labels: ChurnLabels) -> None:
    cs = _open(labels)
    feats = FeaturesAt()
    assert labels.on_watermark(cs, "u1", OBS + HORIZON, feats) == []
    assert cs.churned_ms == 0
    assert feats.calls == []
    # the point is still open, and that day's sweep took its own
    assert cs.obs == [OBS, OBS + HORIZON]
    examples = labels.on_watermark(cs, "u1", OBS + HORIZON + 1, feats)
    assert [(e["label"], e["resolved_at"]) for e in examples] == [
        (1, format_rfc3339_ms(OBS + HORIZON))
    ]
    assert feats.calls == [OBS]
    assert cs.obs == [OBS + HORIZON]
    assert cs.churned_ms == OBS + HORIZON


def test_watermark_past_the_deadline_resolves_a_silent_user_once(labels: ChurnLabels) -> None:
    cs = _open(labels)
    feats = FeaturesAt()
    examples = labels.on_watermark(cs, "u1", OBS + HORIZON + 1, feats)
    assert [(e["label"], e["resolved_at"]) for e in examples] == [
        (1, "2026-01-15T10:00:00.000Z")
    ]
    assert examples[0]["observed_at"] == "2026-01-01T10:00:00.000Z"
    assert examples[0]["features"] == features_of(OBS)
    assert feats.calls == [OBS]
    assert cs.churned_ms == OBS + HORIZON
    # churned: that sweep (a new UTC day) opened no point, and no later one does either
    assert cs.obs == []
    assert labels.next_due_ms(cs) is None
    for later in (OBS + HORIZON + 2, OBS + HORIZON + DAY, OBS + 100 * DAY):
        assert labels.on_watermark(cs, "u1", later, feats) == []
        assert cs.obs == []
    assert cs.examples == 1
    assert feats.calls == [OBS]


def test_at_most_one_observation_point_per_utc_day(labels: ChurnLabels) -> None:
    cs = ChurnState()
    feats = FeaturesAt()
    for t in (T0 + HOUR, T0 + 10 * HOUR, T0 + DAY - 1):
        assert labels.on_watermark(cs, "u1", t, feats) == []
    assert (cs.obs, cs.last_obs_day) == ([T0 + HOUR], T0 // DAY)
    labels.on_watermark(cs, "u1", T0 + DAY, feats)  # 00:00 the next UTC day
    assert (cs.obs, cs.last_obs_day) == ([T0 + HOUR, T0 + DAY], T0 // DAY + 1)
    # a return resolves both; a sweep later that day does not take a second point
    examples = labels.on_activity(cs, "u1", T0 + DAY + HOUR, feats)
    assert [e["label"] for e in examples] == [0, 0]
    labels.on_watermark(cs, "u1", T0 + DAY + 2 * HOUR, feats)
    assert cs.obs == []
    labels.on_watermark(cs, "u1", T0 + 2 * DAY, feats)
    assert cs.obs == [T0 + 2 * DAY]


def test_a_silent_user_has_up_to_a_horizon_of_points_all_resolved_by_one_return(
    labels: ChurnLabels,
) -> None:
    cs = ChurnState()
    feats = FeaturesAt()
    days = HORIZON // DAY  # 14
    sweeps = [OBS + d * DAY for d in range(days)]
    for t in sweeps:
        assert labels.on_watermark(cs, "u1", t, feats) == []
    assert cs.obs == sweeps
    assert labels.next_due_ms(cs) == OBS + HORIZON + 1
    back = sweeps[-1] + HOUR
    examples = labels.on_activity(cs, "u1", back, feats)
    assert [e["label"] for e in examples] == [0] * days
    assert [e["observed_at"] for e in examples] == [format_rfc3339_ms(t) for t in sweeps]
    assert {e["resolved_at"] for e in examples} == {format_rfc3339_ms(back)}
    # each example carries the features of its own observation time
    assert feats.calls == sweeps
    assert [e["features"] for e in examples] == [features_of(t) for t in sweeps]
    assert (cs.obs, cs.churned_ms, cs.examples) == ([], 0, days)


def test_one_return_can_resolve_both_labels(labels: ChurnLabels) -> None:
    # Sweeps at the same time on days 0..14: at the day-14 sweep the day-0 point is exactly at
    # its deadline (not passed), so horizon_days + 1 points are open at that moment.
    cs = ChurnState()
    sweeps = [OBS + d * DAY for d in range(HORIZON // DAY + 1)]
    for t in sweeps:
        assert labels.on_watermark(cs, "u1", t, FeaturesAt()) == []
    assert cs.obs == sweeps
    back = OBS + HORIZON + 1  # 1 ms past the day-0 deadline, within every other horizon
    examples = labels.on_activity(cs, "u1", back, FeaturesAt())
    assert [(e["label"], e["resolved_at"]) for e in examples] == [
        (1, format_rfc3339_ms(OBS + HORIZON))
    ] + [(0, format_rfc3339_ms(back))] * (len(sweeps) - 1)
    assert (cs.obs, cs.churned_ms) == ([], 0)


def test_daily_sweeps_of_a_silent_user_resolve_every_point_as_churned(
    labels: ChurnLabels,
) -> None:
    cs = ChurnState()
    feats = FeaturesAt()
    resolved: list[tuple[int, dict[str, Any]]] = []
    most_open = 0
    for d in range(40):
        for e in labels.on_watermark(cs, "u1", OBS + d * DAY, feats):
            resolved.append((d, e))
        most_open = max(most_open, len(cs.obs))
    points = HORIZON // DAY + 1  # days 0..14; from day 15 on the user is churned
    assert most_open == points
    assert [d for d, _ in resolved] == list(range(15, 15 + points))
    assert [e["label"] for _, e in resolved] == [1] * points
    assert [e["observed_at"] for _, e in resolved] == [
        format_rfc3339_ms(OBS + d * DAY) for d in range(points)
    ]
    assert [e["resolved_at"] for _, e in resolved] == [
        format_rfc3339_ms(OBS + d * DAY + HORIZON) for d in range(points)
    ]
    assert feats.calls == [OBS + d * DAY for d in range(points)]
    assert cs.obs == []
    assert cs.churned_ms == OBS + (points - 1) * DAY + HORIZON
    assert cs.examples == points


def test_a_churned_user_gets_no_new_points_until_they_return(labels: ChurnLabels) -> None:
    cs = _open(labels)
    labels.on_watermark(cs, "u1", OBS + HORIZON + 1, FeaturesAt())
    assert cs.churned_ms == OBS + HORIZON
    for d in range(15, 40):
        assert labels.on_watermark(cs, "u1", OBS + d * DAY, FeaturesAt()) == []
        assert cs.obs == []
    back = OBS + 40 * DAY
    feats = FeaturesAt()
    assert labels.on_activity(cs, "u1", back, feats) == []  # already labelled: nothing open
    assert feats.calls == []
    assert (cs.obs, cs.churned_ms, cs.examples) == ([], 0, 1)
    # back: the next sweep (even the same day) takes a point again
    labels.on_watermark(cs, "u1", back + HOUR, feats)
    assert cs.obs == [back + HOUR]
    assert labels.next_due_ms(cs) == back + HOUR + HORIZON + 1


def test_next_due_ms_is_the_earliest_open_deadline_plus_1(labels: ChurnLabels) -> None:
    cs = ChurnState()
    assert labels.next_due_ms(cs) is None
    labels.on_watermark(cs, "u1", OBS, FeaturesAt())
    labels.on_watermark(cs, "u1", OBS + DAY, FeaturesAt())
    due = labels.next_due_ms(cs)
    assert due == OBS + HORIZON + 1
    assert labels.on_watermark(cs, "u1", due - 1, FeaturesAt()) == []
    assert len(labels.on_watermark(cs, "u1", due, FeaturesAt())) == 1
    assert labels.next_due_ms(cs) == OBS + DAY + HORIZON + 1


def test_a_short_horizon_resolves_the_same_day() -> None:
    cfg = config_from_dict({"churn": {"horizon_days": 0.25}})  # 6 hours
    labels = AsRead(cfg.churn)
    cs = ChurnState()
    labels.on_watermark(cs, "u1", OBS, FeaturesAt())
    assert labels.on_watermark(cs, "u1", OBS + 6 * HOUR, FeaturesAt()) == []
    examples = labels.on_watermark(cs, "u1", OBS + 6 * HOUR + 1, FeaturesAt())
    assert [(e["label"], e["resolved_at"]) for e in examples] == [
        (1, format_rfc3339_ms(OBS + 6 * HOUR))
    ]
    assert cs.obs == []


def test_predict_delegates_to_the_callable() -> None:
    seen: list[Sequence[float]] = []

    def fn(features: Sequence[float]) -> float:
        seen.append(features)
        return 0.25

    cfg = load_config()
    assert ChurnLabels(cfg.churn).predict(vec()) is None
    assert ChurnLabels(cfg.churn, fn).predict(vec()) == 0.25
    assert seen == [vec()]


# ---------------------------------------------------------------------------------------------
# Labels, through the engine: events, and sweeps at daily watermarks
# ---------------------------------------------------------------------------------------------

EV = T0 + 10 * HOUR  # the user's first event
SWEEP1 = EV + DAY  # the first daily refresh sweep: the first observation point


def _engine(
    config: EngageConfig | None = None,
    predict: Callable[[Sequence[float]], float | None] = lambda _f: None,
    triggers: bool = True,
) -> ScoringEngine:
    config = config or load_config()
    return ReadBack(
        config,
        churn=ChurnLabels(config.churn, predict),
        triggers=TriggerRules(config) if triggers else None,
    )


def _ev(n: int, ts: int, etype: str = "session_start", user: str = "u1") -> Event:
    return Event(f"ev-{user}-{n}", user, etype, ts)


def _started(engine: ScoringEngine, etype: str = "session_start") -> UserState:
    """u1's state after a first event at EV (no observation point yet)."""
    out = engine.apply(None, _ev(0, EV, etype), EV)
    assert out.status == "scored" and out.examples == []
    assert out.state is not None
    return out.state


def _labels(out: Any) -> list[tuple[int, str]]:
    return [(e["label"], e["resolved_at"]) for e in out.examples]


def test_engine_events_open_no_point_and_the_refresh_sweep_is_daily() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    assert st.churn.obs == []
    assert engine.next_due_ms(st) == EV + DAY
    # events do not push the daily refresh back
    assert engine.apply(st, _ev(1, EV + 5 * HOUR), EV + 5 * HOUR).examples == []
    assert st.churn.obs == []
    assert engine.next_due_ms(st) == EV + DAY
    out = engine.sweep(st, "u1", SWEEP1)
    assert (out.status, out.examples) == ("swept", [])
    assert (st.churn.obs, st.churn.last_obs_day, st.last_sweep_ms) == (
        [SWEEP1], SWEEP1 // DAY, SWEEP1,
    )
    assert engine.next_due_ms(st) == SWEEP1 + DAY


def test_engine_return_exactly_at_the_horizon_is_label_0() -> None:
    engine = _engine()
    st = _started(engine)
    engine.sweep(st, "u1", SWEEP1)
    back = SWEEP1 + HORIZON
    out = engine.apply(st, _ev(1, back), back)
    assert out.status == "scored"
    assert _labels(out) == [(0, "2026-01-16T10:00:00.000Z")]
    assert out.examples[0]["observed_at"] == "2026-01-02T10:00:00.000Z"
    assert st.churn.obs == [] and st.churn.churned_ms == 0
    # not labelled churned, so no trigger may claim it was (15 silent days: a plain win-back)
    rules = [t["reason"]["rule"] for t in out.triggers]
    assert "win_back.churned" not in rules
    assert "win_back.silence" in rules


def test_engine_return_one_ms_after_the_horizon_is_label_1_and_a_win_back() -> None:
    engine = _engine()
    st = _started(engine)
    engine.sweep(st, "u1", SWEEP1)
    back = SWEEP1 + HORIZON + 1
    out = engine.apply(st, _ev(1, back), back)
    assert _labels(out) == [(1, "2026-01-16T10:00:00.000Z")]
    assert [t["reason"]["rule"] for t in out.triggers] == ["win_back.churned"]
    assert out.triggers[0]["reason"]["features"]["was_labelled_churned"] is True
    assert st.churn.churned_ms == 0


def test_engine_example_features_are_those_the_model_was_asked_about() -> None:
    asked: list[list[float]] = []

    def predict(features: Sequence[float]) -> float | None:
        asked.append(list(features))
        return None

    engine = _engine(predict=predict, triggers=False)
    st = _started(engine, "purchase")
    expected = engine.view(st, SWEEP1).features()
    assert engine.sweep(st, "u1", SWEEP1).examples == []
    assert asked == [list(expected.values())]  # the sweep asked the model at SWEEP1
    out = engine.apply(st, _ev(1, SWEEP1 + 2 * DAY), SWEEP1 + 2 * DAY)
    (ex,) = out.examples
    assert ex["label"] == 0
    assert list(ex["features"]) == list(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        assert ex["features"][name] == pytest.approx(expected[name], rel=1e-6, abs=1e-6)
    # the observation moment (a day into the silence), not the return (three days in)
    assert ex["features"]["recency_days"] == 1.0
    assert ex["features"]["tenure_days"] == 1.0


def test_engine_an_event_at_the_observation_time_discards_it() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    engine.sweep(st, "u1", SWEEP1)
    at = engine.apply(st, _ev(1, SWEEP1), SWEEP1)
    assert (at.status, at.examples) == ("scored", [])
    assert st.churn.obs == []
    after = engine.apply(st, _ev(2, SWEEP1 + 1), SWEEP1 + 1)
    assert _labels(after) == []


def test_engine_sweep_resolves_a_silent_user_only_past_the_horizon() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    engine.sweep(st, "u1", SWEEP1)
    at_deadline = engine.sweep(st, "u1", SWEEP1 + HORIZON)
    assert at_deadline.status == "swept"
    assert at_deadline.examples == []
    assert st.churn.churned_ms == 0
    past = engine.sweep(st, "u1", SWEEP1 + HORIZON + 1)
    assert _labels(past) == [(1, "2026-01-16T10:00:00.000Z")]
    assert st.churn.churned_ms == SWEEP1 + HORIZON
    assert st.churn.obs == [SWEEP1 + HORIZON]  # the point the at-deadline sweep took


def test_engine_daily_sweeps_of_a_silent_user() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    resolved: list[tuple[int, dict[str, Any]]] = []
    most_open = 0
    for d in range(1, 50):
        out = engine.sweep(st, "u1", EV + d * DAY)
        resolved += [(d, e) for e in out.examples]
        most_open = max(most_open, len(st.churn.obs))
    points = HORIZON // DAY + 1  # days 1..15, then churned: no more points
    assert most_open == points
    assert [d for d, _ in resolved] == list(range(16, 16 + points))
    assert {e["label"] for _, e in resolved} == {1}
    assert [e["observed_at"] for _, e in resolved] == [
        format_rfc3339_ms(EV + d * DAY) for d in range(1, 1 + points)
    ]
    assert [e["resolved_at"] for _, e in resolved] == [
        format_rfc3339_ms(EV + d * DAY + HORIZON) for d in range(1, 1 + points)
    ]
    # features at each observation: a silent user is observed days into the silence
    assert [e["features"]["recency_days"] for _, e in resolved] == [
        float(d) for d in range(1, 1 + points)
    ]
    assert st.churn.obs == []
    assert st.churn.examples == points


def test_engine_driven_by_next_due_ms_resolves_each_point_1_ms_past_its_horizon() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    swept: list[int] = []
    resolved: list[tuple[int, dict[str, Any]]] = []
    while (due := engine.next_due_ms(st)) is not None and due <= EV + 60 * DAY:
        swept.append(due)
        resolved += [(due, e) for e in engine.sweep(st, "u1", due).examples]
    # daily refreshes from the first event, until the first deadline interleaves
    assert swept[:15] == [EV + d * DAY for d in range(1, 16)]
    assert [t for t, _ in resolved] == [
        EV + d * DAY + HORIZON + 1 for d in range(1, 16)
    ]
    assert [e["label"] for _, e in resolved] == [1] * 15
    assert st.churn.obs == []
    assert st.churn.churned_ms == EV + 15 * DAY + HORIZON


def test_engine_one_return_resolves_every_open_point() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    sweeps = [EV + d * DAY for d in range(1, 11)]
    for t in sweeps:
        assert engine.sweep(st, "u1", t).examples == []
    assert st.churn.obs == sweeps
    back = EV + 11 * DAY + HOUR
    out = engine.apply(st, _ev(1, back), back)
    assert _labels(out) == [(0, format_rfc3339_ms(back))] * len(sweeps)
    assert [e["observed_at"] for e in out.examples] == [format_rfc3339_ms(t) for t in sweeps]
    assert (st.churn.obs, st.churn.churned_ms, st.churn.examples) == ([], 0, len(sweeps))


def test_engine_a_late_return_resolves_past_points_as_churned_and_the_rest_as_0() -> None:
    engine = _engine()
    st = _started(engine)
    for d in (1, 2, 3):
        engine.sweep(st, "u1", EV + d * DAY)
    back = EV + 2 * DAY + HORIZON  # past day 1's horizon, exactly at day 2's
    out = engine.apply(st, _ev(1, back), back)
    assert _labels(out) == [
        (1, format_rfc3339_ms(EV + DAY + HORIZON)),
        (0, format_rfc3339_ms(back)),
        (0, format_rfc3339_ms(back)),
    ]
    assert "win_back.churned" in [t["reason"]["rule"] for t in out.triggers]
    assert (st.churn.obs, st.churn.churned_ms) == ([], 0)


def test_engine_churned_user_gets_no_points_until_they_return() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    engine.sweep(st, "u1", SWEEP1)
    assert len(engine.sweep(st, "u1", SWEEP1 + HORIZON + 1).examples) == 1
    for d in range(16, 30):
        assert engine.sweep(st, "u1", EV + d * DAY).examples == []
        assert st.churn.obs == []
    back = EV + 30 * DAY + HOUR
    returned = engine.apply(st, _ev(1, back), back)
    assert returned.examples == []  # the churned observation was already labelled
    assert (st.churn.obs, st.churn.churned_ms) == ([], 0)
    obs = back + HOUR
    engine.sweep(st, "u1", obs)
    assert st.churn.obs == [obs]
    assert engine.sweep(st, "u1", obs + HORIZON).examples == []
    again = engine.sweep(st, "u1", obs + HORIZON + 1)
    assert _labels(again) == [(1, format_rfc3339_ms(obs + HORIZON))]


def test_engine_next_due_ms_includes_the_churn_deadline() -> None:
    # Refresh sweeps off (refresh_for_days < refresh_every_hours) and no triggers: once a sweep
    # has taken a point, the only thing due is its deadline.
    cfg = config_from_dict({"scoring": {"refresh_for_days": 0.5}})
    engine = _engine(cfg, triggers=False)
    st = _started(engine)
    assert engine.next_due_ms(st) is None
    obs = EV + HOUR
    engine.sweep(st, "u1", obs)
    assert st.churn.obs == [obs]
    assert engine.next_due_ms(st) == obs + HORIZON + 1
    engine.sweep(st, "u1", obs + HORIZON + 1)
    assert engine.next_due_ms(st) is None


def test_engine_at_most_one_observation_per_user_per_day() -> None:
    engine = _engine(triggers=False)
    st = _started(engine)
    for t in (SWEEP1, SWEEP1 + HOUR, T0 + 2 * DAY - 1):
        assert engine.sweep(st, "u1", t).examples == []
    assert (st.churn.obs, st.churn.last_obs_day) == ([SWEEP1], SWEEP1 // DAY)
    out = engine.apply(st, _ev(1, SWEEP1 + 2 * HOUR), SWEEP1 + 2 * HOUR)
    assert [e["label"] for e in out.examples] == [0]
    engine.sweep(st, "u1", SWEEP1 + 3 * HOUR)
    assert st.churn.obs == []  # that day's point was taken already
    engine.sweep(st, "u1", T0 + 2 * DAY)
    assert st.churn.obs == [T0 + 2 * DAY]
    assert st.churn.examples == 1


def test_engine_late_event_is_late_and_changes_nothing() -> None:
    engine = _engine()
    st = engine.apply(None, _ev(1, OBS), OBS).state
    assert st is not None
    before = encode_state(st)
    out = engine.apply(st, _ev(2, OBS + HOUR - 1, "post"), OBS + HOUR)
    assert out.status == "late"
    assert out.examples == [] and out.triggers == []
    assert encode_state(st) == before
    # a late first event creates no state
    fresh = engine.apply(None, _ev(3, OBS, user="u2"), OBS + 1)
    assert fresh.status == "late"
    assert fresh.state is None


# ---------------------------------------------------------------------------------------------
# Signed artifacts
# ---------------------------------------------------------------------------------------------

KEY = b"test-signing-key"
UNPICKLED: list[str] = []  # flipped by Canary's unpickling


def _flip(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Canary:
    """Unpickling this calls _flip: proof of whether pickle.loads ran."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_flip, ("unpickled",))


@pytest.fixture
def canary_blob() -> bytes:
    UNPICKLED.clear()
    blob = sign_artifact(Canary(), {"name": "canary", "version": 1}, KEY)
    assert UNPICKLED == []
    return blob


def _split(blob: bytes) -> tuple[dict[str, Any], bytes]:
    line, _, payload = blob[len(MAGIC) :].partition(b"\n")
    meta: dict[str, Any] = json.loads(line)
    return meta, payload


def _join(meta: dict[str, Any], payload: bytes) -> bytes:
    return MAGIC + json.dumps(meta).encode() + b"\n" + payload


def test_artifact_round_trip() -> None:
    model = registry.build_model("logreg")
    x = as_features(vec(0.5))
    for i in range(20):
        model.learn_one(as_features(vec(i / 10)), i % 2 == 0)
    blob = sign_artifact(model, {"name": "logreg", "version": 7}, KEY)
    assert blob.startswith(MAGIC)
    loaded, meta = load_artifact(blob, KEY)
    assert meta["name"] == "logreg" and meta["version"] == 7
    assert "signature" not in meta
    assert len(meta["payload_sha256"]) == 64
    assert loaded.predict_proba_one(x) == model.predict_proba_one(x)
    listed = read_metadata(blob)
    assert listed["version"] == 7 and isinstance(listed["signature"], str)


def test_artifact_round_trip_runs_the_canary(canary_blob: bytes) -> None:
    # The positive control: a valid artifact is unpickled (so the refusals below mean it).
    obj, _ = load_artifact(canary_blob, KEY)
    assert obj == "unpickled"
    assert UNPICKLED == ["unpickled"]


def _tamper_payload(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0x01])


def _tamper_payload_fix_digest(blob: bytes) -> bytes:
    meta, _ = _split(blob)
    evil = pickle.dumps(Canary())
    meta["payload_sha256"] = hashlib.sha256(evil).hexdigest()
    return _join(meta, evil)


def _tamper_metadata(blob: bytes) -> bytes:
    meta, payload = _split(blob)
    meta["version"] = 999
    return _join(meta, payload)


def _drop_signature(blob: bytes) -> bytes:
    meta, payload = _split(blob)
    del meta["signature"]
    return _join(meta, payload)


def _non_string_signature(blob: bytes) -> bytes:
    meta, payload = _split(blob)
    meta["signature"] = 12345
    return _join(meta, payload)


@pytest.mark.parametrize(
    ("tamper", "key", "reason"),
    [
        (_tamper_payload, KEY, "bad_signature"),
        (_tamper_payload_fix_digest, KEY, "bad_signature"),
        (_tamper_metadata, KEY, "bad_signature"),
        (lambda b: b, b"another-key", "bad_signature"),
        (_drop_signature, KEY, "unsigned"),
        (_non_string_signature, KEY, "unsigned"),
        (lambda b: b[len(MAGIC) :], KEY, "unsigned"),  # no header
        (lambda b: pickle.dumps(Canary()), KEY, "unsigned"),  # a bare pickle
        (lambda b: b"", KEY, "unsigned"),
        (lambda b: MAGIC + b'{"name": "x"}', KEY, "malformed"),  # no newline after metadata
        (lambda b: MAGIC + b"not json\n" + _split(b)[1], KEY, "malformed"),
    ],
    ids=[
        "tampered-payload", "payload-swapped-with-digest", "tampered-metadata", "wrong-key",
        "missing-signature", "non-string-signature", "no-header", "bare-pickle", "empty",
        "no-metadata-line", "metadata-not-json",
    ],
)
def test_artifact_refusals_never_unpickle(
    canary_blob: bytes, tamper: Callable[[bytes], bytes], key: bytes, reason: str
) -> None:
    with pytest.raises(ArtifactRejected) as info:
        load_artifact(tamper(canary_blob), key)
    assert info.value.reason == reason
    assert UNPICKLED == []


@pytest.mark.parametrize("line", [b"[1, 2]", b'"text"', b"42"])
def test_artifact_metadata_not_an_object_is_malformed(canary_blob: bytes, line: bytes) -> None:
    with pytest.raises(ArtifactRejected) as info:
        load_artifact(MAGIC + line + b"\n" + _split(canary_blob)[1], KEY)
    assert info.value.reason == "malformed"
    assert UNPICKLED == []


def test_artifact_non_ascii_signature_is_refused(canary_blob: bytes) -> None:
    meta, payload = _split(canary_blob)
    meta["signature"] = "\u00e9" * 64
    with pytest.raises(ArtifactRejected) as info:
        load_artifact(_join(meta, payload), KEY)
    assert info.value.reason == "bad_signature"
    assert UNPICKLED == []


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

FACTORY_CALLS: list[str] = []


class RecordingModel:
    """A minimal river-like binary classifier recording its calls; predicts the share of
    True labels learned so far (0.5 before any)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.n = 0
        self.pos = 0

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        self.calls.append(("predict", x["recency_days"]))
        p = self.pos / self.n if self.n else 0.5
        return {True: p, False: 1.0 - p}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.calls.append(("learn", (x["recency_days"], y)))
        self.n += 1
        self.pos += int(y)


def my_factory() -> RecordingModel:
    FACTORY_CALLS.append("my_factory")
    return RecordingModel()


def not_a_classifier() -> object:
    return object()


SELF = "tests.unit.test_churn"


@pytest.mark.parametrize("name", sorted(registry.BUILTINS))
def test_builtins_resolve_to_river_classifiers(name: str) -> None:
    assert registry.known_model(name)
    assert registry.resolve(name) is registry.BUILTINS[name]
    model = registry.build_model(name)
    assert isinstance(model, river_base.Classifier)
    for i in range(10):
        model.learn_one(as_features(vec(i)), i % 2 == 0)
    proba = model.predict_proba_one(as_features(vec(3)))
    assert 0.0 <= proba.get(True, 0.0) <= 1.0


def test_list_models_names_the_builtins() -> None:
    names = [n for n, _ in registry.list_models()]
    assert names[:3] == ["logreg", "hoeffding", "forest"]
    assert all(desc for _, desc in registry.list_models())


def test_module_factory_path() -> None:
    FACTORY_CALLS.clear()
    assert registry.resolve(f"{SELF}:my_factory") is my_factory
    model = registry.build_model(f"{SELF}:my_factory")
    assert isinstance(model, RecordingModel)
    assert FACTORY_CALLS == ["my_factory"]
    cfg = config_from_dict({"churn": {"model": f"{SELF}:my_factory"}})
    assert cfg.churn.model == f"{SELF}:my_factory"


def test_build_model_refuses_a_non_classifier() -> None:
    with pytest.raises(TypeError, match="river classifier"):
        registry.build_model(f"{SELF}:not_a_classifier")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "unknown model 'nope'"),
        ("nope", "logreg"),  # the message lists the built-ins...
        ("nope", "module:factory"),  # ...and the other ways to name a model
        (f"{SELF}:no_such_factory", "cannot import"),
        ("no_such_package_xyz.models:factory", "cannot import"),
    ],
)
def test_unknown_models_raise_a_helpful_key_error(name: str, message: str) -> None:
    with pytest.raises(KeyError, match=message):
        registry.resolve(name)
    assert registry.known_model(name) is False


@pytest.mark.parametrize("key", ["model", "shadow"])
def test_config_with_an_unknown_model_names_the_key(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"churn": {key: "nope"}})
    assert info.value.key == f"churn.{key}"
    assert "nope" in str(info.value)


def test_config_with_an_empty_module_path_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"churn": {"model": ":factory"}})
    assert info.value.key == "churn.model"


# ---------------------------------------------------------------------------------------------
# Trainer and predictor
# ---------------------------------------------------------------------------------------------

RECORDING = f"{SELF}:my_factory"


def _example(recency: float, label: int) -> dict[str, Any]:
    features = dict(zip(FEATURE_NAMES, vec(), strict=True))
    features["recency_days"] = recency
    return {"features": features, "label": label}


def test_progressive_validation_predicts_before_learning() -> None:
    trainer = ChurnTrainer(RECORDING)
    trainer.learn(_example(1.0, 1))
    trainer.learn(_example(2.0, 0))
    slot = trainer.champion
    assert slot.model.calls == [
        ("predict", 1.0), ("learn", (1.0, True)), ("predict", 2.0), ("learn", (2.0, False)),
    ]
    # Brier from the *prior* predictions: 0.5 for y=1, then 1.0 (one True seen) for y=0.
    assert slot.brier.get() == pytest.approx(((0.5 - 1) ** 2 + (1.0 - 1e-7) ** 2) / 2)
    assert slot.metrics()["validated"] == 2
    assert slot.learned == 2
    assert trainer.labels == {0: 1, 1: 1}
    assert trainer.since_publish == 2
    status = trainer.status()
    assert status["champion"]["name"] == RECORDING
    assert status["champion"]["validated"] == 2
    assert status["examples"] == {"not_churned": 1, "churned": 1}
    assert status["shadow"] is None


def test_progressive_validation_with_a_builtin() -> None:
    trainer = ChurnTrainer("logreg")
    for i in range(30):
        trainer.learn(_example(float(i), i % 3 == 0))
    m = trainer.status()["champion"]
    assert m["validated"] == 30
    assert 0.0 <= m["roc_auc"] <= 1.0 and m["log_loss"] > 0 and 0.0 <= m["brier"] <= 1.0


def test_swap_warm_starts_from_the_buffer_without_validating() -> None:
    trainer = ChurnTrainer("logreg", buffer_size=3)
    for i in range(5):
        trainer.learn(_example(float(i), i % 2))
    trainer.since_publish = 0
    trainer.swap(RECORDING)
    slot = trainer.champion
    assert slot.name == RECORDING
    # only the last 3 (buffer size), in order, learned without prediction
    assert slot.model.calls == [
        ("learn", (2.0, False)), ("learn", (3.0, True)), ("learn", (4.0, False)),
    ]
    assert slot.learned == 3
    assert slot.validated == 0
    assert trainer.since_publish == 1  # a swapped champion is worth publishing


def test_shadow_learns_the_same_examples() -> None:
    trainer = ChurnTrainer("logreg", shadow=RECORDING)
    assert trainer.shadow is not None
    for i in range(4):
        trainer.learn(_example(float(i), i % 2))
    shadow = trainer.shadow
    assert [c for c in shadow.model.calls if c[0] == "learn"] == [
        ("learn", (float(i), bool(i % 2))) for i in range(4)
    ]
    assert shadow.validated == trainer.champion.validated == 4
    assert trainer.status()["shadow"]["name"] == RECORDING


def test_start_shadow_warm_starts() -> None:
    trainer = ChurnTrainer("logreg")
    for i in range(3):
        trainer.learn(_example(float(i), 1))
    trainer.start_shadow(RECORDING)
    assert trainer.shadow is not None
    assert trainer.shadow.learned == 3 and trainer.shadow.validated == 0
    trainer.learn(_example(9.0, 0))
    assert trainer.shadow.validated == 1 and trainer.shadow.learned == 4


def test_promote_moves_the_shadow_to_champion() -> None:
    trainer = ChurnTrainer("logreg", shadow=RECORDING)
    trainer.learn(_example(1.0, 1))
    shadow = trainer.shadow
    trainer.since_publish = 0
    trainer.promote()
    assert trainer.champion is shadow
    assert trainer.shadow is None
    assert trainer.champion.validated == 1  # keeps what it learned and its metrics
    assert trainer.since_publish == 1
    with pytest.raises(ValueError, match="no shadow"):
        trainer.promote()


def test_next_version_is_monotonic() -> None:
    trainer = ChurnTrainer("logreg")
    trainer.learn(_example(1.0, 1))
    v1 = trainer.next_version()
    assert trainer.since_publish == 0
    trainer.version = v1 + 10_000_000  # e.g. a version restored from a clock ahead of ours
    assert trainer.next_version() == v1 + 10_000_001


def test_predictor_none_before_a_model_and_version_ordering() -> None:
    p = Predictor()
    assert p.predict(vec()) is None
    a, b = ModelSlot(RECORDING), ModelSlot(RECORDING)
    b.model.learn_one(as_features(vec()), True)  # b predicts 1.0, a predicts 0.5
    assert p.load(a.model, "a", 5) is True
    assert p.predict(vec()) == 0.5
    assert p.load(b.model, "b", 5) is False  # same version: ignored
    assert p.load(b.model, "b", 4) is False  # older: ignored
    assert (p.name, p.version, p.predict(vec())) == ("a", 5, 0.5)
    assert p.load(b.model, "b", 6) is True
    assert (p.name, p.version, p.predict(vec())) == ("b", 6, 1.0)


def test_predictor_feeds_named_features() -> None:
    p = Predictor()
    slot = ModelSlot(RECORDING)
    p.load(slot.model, "r", 1)
    p.predict(vec(7.0))
    assert slot.model.calls == [("predict", 7.0)]  # recency_days is the first feature


def test_predictor_drives_the_engine_probability() -> None:
    p = Predictor()
    engine = _engine(predict=p.predict, triggers=False)
    st = engine.apply(None, _ev(1, OBS), OBS).state
    assert isinstance(st, UserState)
    assert engine.sweep(st, "u1", OBS + DAY).churn_probability is None
    assert engine.score_record(st, "u1", OBS + DAY)["churn_probability"] is None
    p.load(ModelSlot(RECORDING).model, "r", 1)
    assert engine.sweep(st, "u1", OBS + 2 * DAY).churn_probability == 0.5
    assert engine.score_record(st, "u1", OBS + 2 * DAY)["churn_probability"] == 0.5
