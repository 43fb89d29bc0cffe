"""Churn outcome, observation points and delayed labels (via ChurnLabels and via the engine),
signed artifacts, the model registry, and the trainer / predictor."""

from __future__ import annotations

import hashlib
import json
import math
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
from scoring.churn.bgnbd import BgNbdParams
from scoring.churn.labels import ChurnLabels, round6, user_key
from scoring.churn.layout import FEATURE_LAYOUT, FEATURE_NAMES, layout_problem
from scoring.churn.lifetime import lifetime_features
from scoring.churn.mbgnbd import MbgNbdParams
from scoring.churn.priors import PopulationParams
from scoring.churn.state import ChurnState
from scoring.churn.trainer import (
    ChurnTrainer,
    ExampleRefused,
    ModelSlot,
    Predictor,
    as_features,
    example_id,
)
from scoring.config import ConfigError, EngageConfig, config_from_dict, load_config
from scoring.engine import ScoringEngine
from scoring.events import Event
from scoring.state import UserState
from scoring.state_codec import encode_state
from scoring.timeutil import format_rfc3339_ms
from scoring.triggers.admission import TriggerRules
from tests.helpers import ReadBack

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 86_400_000
HORIZON = 14 * DAY  # the default churn.horizon_days
EV = T0 + 10 * HOUR  # the user's first event: 10:00 on day 0
KEY_U1 = user_key("u1")


def vec(seed: float = 0.0) -> list[float]:
    return [seed + i for i in range(len(FEATURE_NAMES))]


# ---------------------------------------------------------------------------------------------
# The outcome and observation points, directly on ChurnLabels
# ---------------------------------------------------------------------------------------------


class AsRead(ChurnLabels):
    """Examples as the trainer reads them off the topic (JSON objects)."""

    def on_activity(self, *args: Any, **kwargs: Any) -> Any:
        return msgspec.to_builtins(super().on_activity(*args, **kwargs))

    def on_watermark(self, *args: Any, **kwargs: Any) -> Any:
        return msgspec.to_builtins(super().on_watermark(*args, **kwargs))


def _labels(overrides: dict[str, Any] | None = None, **kwargs: Any) -> AsRead:
    return AsRead(config_from_dict(overrides or {}), **kwargs)


def _event(labels: ChurnLabels, state: UserState, ts: int, etype: str = "session_start",
           amount: float = 0.0, user: str = "u1") -> Any:
    return labels.on_activity(state, user, Event(f"{user}@{ts}", user, etype, ts, amount))


def _points(labels: ChurnLabels, anchor: int) -> list[int]:
    return [p.observed_ms for p in labels.schedule.points(KEY_U1, anchor)]


def test_the_first_return_anchors_points_and_resolves_nothing() -> None:
    labels = _labels()
    st = UserState()
    assert _event(labels, st, EV) == []
    cs = st.churn
    assert (cs.first_day, cs.last_day, cs.last_ms, cs.active_days, cs.resolved, cs.key) == (
        EV // DAY, EV // DAY, EV, 1, 0, KEY_U1)
    points = _points(labels, EV)
    assert len(points) == 11  # octaves [0,1), [1,2), [2,4) ... [512, 730) days of silence
    assert points == sorted(points) and EV <= points[0] < EV + DAY
    assert labels.next_due_ms(cs) == points[0] + HORIZON + 1
    assert labels.next_due_ms(ChurnState()) is None


def test_a_return_exactly_at_the_horizon_is_label_0_and_one_ms_later_label_1() -> None:
    labels = _labels()
    first = _points(labels, EV)[0]
    for back, label, resolved in ((first + HORIZON, 0, first + HORIZON),
                                  (first + HORIZON + 1, 1, first + HORIZON)):
        st = UserState()
        _event(labels, st, EV)
        examples = _event(labels, st, back)
        e = examples[0]
        assert (e["schema"], e["user_id"], e["label"]) == ("churn-example/v2", "u1", label)
        assert e["observed_at"] == format_rfc3339_ms(first)
        assert e["resolved_at"] == format_rfc3339_ms(resolved)
        assert e["weight"] == 1.0  # the first octave stands for one day of silence
        assert st.churn.last_ms == back and st.churn.resolved == 0  # re-anchored
        assert st.churn.churned_ms == 0


def test_a_return_resolves_every_point_it_follows_with_features_from_before_it() -> None:
    labels = _labels()
    st = UserState()
    _event(labels, st, EV, "purchase", amount=20.0)
    before = ChurnState(**msgspec.structs.asdict(st.churn))
    points = _points(labels, EV)
    back = points[6] + HOUR  # the 7th point ([32, 64) days) has opened
    examples = _event(labels, st, back, "purchase", amount=5.0)
    assert [e["observed_at"] for e in examples] == [format_rfc3339_ms(t) for t in points[:7]]
    assert [e["label"] for e in examples] == [int(back > t + HORIZON) for t in points[:7]]
    assert [e["resolved_at"] for e in examples] == [
        format_rfc3339_ms(min(back, t + HORIZON)) for t in points[:7]]
    assert [e["weight"] for e in examples] == [1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    for e, t in zip(examples, points, strict=False):
        # what the user looked like at the point: the return is not in them
        expected = lifetime_features(before, t, labels.lifetime, None)
        assert list(e["features"]) == list(FEATURE_NAMES)
        assert list(e["features"].values()) == pytest.approx(expected, abs=1e-6)
        # the customer as of the resolution: the return that resolved it is in (the
        # trainer's BG/NBD sample must not lag the customer's newest return)
        assert e["customer"] == {"first_day": EV // DAY, "last_day": back // DAY,
                                 "repeat_days": 1}
    assert (st.churn.active_days, st.churn.spend, st.churn.paid) == (2, 25.0, 2)
    assert st.churn.examples == 7


def test_sweeps_label_each_point_churned_once_and_points_go_on_after_a_churn() -> None:
    labels = _labels({"churn": {"population_days": 100}})
    st = UserState()
    _event(labels, st, EV)
    cs = st.churn
    points = _points(labels, EV)
    assert len(points) == 8  # octaves up to [64, 100) days: the population's silences
    swept: list[tuple[int, list[Any]]] = []
    while (due := labels.next_due_ms(cs)) is not None:
        assert labels.on_watermark(cs, "u1", due - 1) == []
        swept.append((due, labels.on_watermark(cs, "u1", due)))
        assert cs.churned_ms == due - 1  # labelled churned at the point's deadline
    assert [due for due, _ in swept] == [t + HORIZON + 1 for t in points]
    assert [[e["label"] for e in out] for _, out in swept] == [[1]] * 8
    assert [out[0]["observed_at"] for _, out in swept] == [format_rfc3339_ms(t) for t in points]
    assert (cs.resolved, cs.churned_ms, cs.examples) == (8, points[-1] + HORIZON, 8)
    # the next return resolves nothing more (all labelled) and says they are back
    assert _event(labels, st, points[-1] + HORIZON + DAY) == []
    assert (cs.resolved, cs.churned_ms) == (0, 0)


def test_only_the_configured_types_are_returns() -> None:
    labels = _labels({"churn": {"return_types": ["purchase"]}})
    st = UserState()
    assert _event(labels, st, EV, "view") == []
    assert st.churn == ChurnState()  # not a customer yet: no summary, no points
    assert labels.predict(st.churn, EV) is None and labels.next_due_ms(st.churn) is None
    _event(labels, st, EV + HOUR, "purchase", amount=30.0)
    points = _points(labels, EV + HOUR)
    # a view after the first point opened neither resolves it nor moves the anchor
    assert _event(labels, st, points[1] + 1, "view") == []
    assert st.churn.last_ms == EV + HOUR and st.churn.active_days == 1
    examples = _event(labels, st, points[1] + 2, "purchase", amount=10.0)
    assert [e["label"] for e in examples] == [0, 0]
    assert (st.churn.active_days, st.churn.spend) == (2, 40.0)


def test_refunds_count_against_spend_and_amounts_of_other_types_are_ignored() -> None:
    labels = _labels()
    st = UserState()
    _event(labels, st, EV, "purchase", amount=50.0)
    _event(labels, st, EV + HOUR, "refund", amount=20.0)
    _event(labels, st, EV + 2 * HOUR, "like", amount=99.0)  # like: no transactional amount
    assert (st.churn.spend, st.churn.paid, st.churn.active_days) == (30.0, 1, 1)


def test_the_population_bounds_points_and_predictions() -> None:
    labels = _labels({"churn": {"population_days": 30}}, predict=lambda _f: 0.25)
    st = UserState()
    _event(labels, st, EV)
    assert labels.schedule.octaves == 6  # [0,1) [1,2) [2,4) [4,8) [8,16) [16,30) days
    assert labels.predict(st.churn, EV + 30 * DAY) == 0.25
    assert labels.predict(st.churn, EV + 30 * DAY + 1) is None  # silent longer: not in it


def test_predict_asks_the_model_about_the_features_now_with_the_models_parameters() -> None:
    params = PopulationParams(BgNbdParams(0.5, 20.0, 0.7, 2.5), MbgNbdParams(0.5, 20.0, 0.7, 2.5))
    asked: list[list[float]] = []

    def predict(features: Sequence[float]) -> float:
        asked.append(list(features))
        return 0.75

    labels = _labels(predict=predict, params=lambda: params)
    st = UserState()
    _event(labels, st, EV)
    _event(labels, st, EV + 3 * DAY)
    now = EV + 10 * DAY
    assert labels.predict(st.churn, now) == 0.75
    assert asked == [lifetime_features(st.churn, now, labels.lifetime, params)]
    assert asked[0][FEATURE_NAMES.index("bgnbd_logit_return")] != 0.0
    assert asked[0][FEATURE_NAMES.index("mbgnbd_logit_return")] != 0.0


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [0, 2, 1, 3], [3, 0, 2, 1], [2, 3, 1, 0]])
def test_late_returns_give_the_lifetime_of_the_ordered_stream(order: list[int]) -> None:
    # returns on days 0, 3, 3 (later that day) and 5; lateness allows 7 days
    times = [EV, EV + 3 * DAY, EV + 3 * DAY + HOUR, EV + 5 * DAY]
    amounts = [10.0, 5.0, 0.0, 7.5]
    labels = _labels({"scoring": {"lateness_seconds": 7 * 86_400}})
    ordered, shuffled = UserState(), UserState()
    for i in range(4):
        _event(labels, ordered, times[i], "purchase", amount=amounts[i])
    for i in order:
        _event(labels, shuffled, times[i], "purchase", amount=amounts[i])
    a, b = ordered.churn, shuffled.churn
    for name in ("first_day", "last_day", "last_ms", "active_days", "paid", "recent_days",
                 "before_recent", "key", "resolved"):
        assert getattr(b, name) == getattr(a, name), name
    for name in ("gap_m2", "pulse_short", "pulse_long", "spend"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-12), name
    assert (a.first_day, a.active_days, a.recent_days) == (EV // DAY, 3, 0b100101)


def test_a_late_return_from_before_the_recent_days_finds_its_neighbours() -> None:
    labels = _labels({"scoring": {"lateness_seconds": 7 * 86_400}})
    ordered, late = UserState(), UserState()
    days = [0, 20, 38, 40]  # day 20 leaves the 16 recent days once day 38 comes
    for d in days:
        _event(labels, ordered, EV + d * DAY)
    for d in (0, 20, 40, 38):
        _event(labels, late, EV + d * DAY)
    assert late.churn.before_recent == ordered.churn.before_recent == EV // DAY + 20
    assert late.churn.gap_m2 == pytest.approx(ordered.churn.gap_m2, rel=1e-12)
    assert late.churn.recent_days == ordered.churn.recent_days == 0b101


def test_a_user_from_before_the_lifetime_summary_is_seeded_from_their_activity() -> None:
    engine = _engine(triggers=False)
    st = engine.apply(None, _ev(0, EV, "purchase", 40.0), EV).state
    assert st is not None
    engine.apply(st, _ev(1, EV + 2 * DAY), EV + 2 * DAY)
    expected = ChurnState(**msgspec.structs.asdict(st.churn))
    st.churn = ChurnState()  # as engage 0.1 left it
    labels = engine.churn
    assert isinstance(labels, ChurnLabels)
    labels.on_activity(st, "u1", Event("x", "u1", "view", EV + 2 * DAY + HOUR))
    seeded = st.churn
    for name in ("first_day", "last_day", "active_days", "spend", "paid", "recent_days", "key"):
        assert getattr(seeded, name) == getattr(expected, name), name
    assert seeded.last_ms == EV + 2 * DAY + HOUR
    assert seeded.pulse_short == pytest.approx(expected.pulse_short, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Through the engine: events, sweeps at due times, win-backs
# ---------------------------------------------------------------------------------------------


def _engine(
    config: EngageConfig | None = None,
    predict: Callable[[Sequence[float]], float | None] = lambda _f: None,
    triggers: bool = True,
) -> ScoringEngine:
    config = config or load_config()
    return ReadBack(
        config,
        churn=ChurnLabels(config, predict),
        triggers=TriggerRules(config) if triggers else None,
    )


def _ev(n: int, ts: int, etype: str = "session_start", amount: float = 0.0,
        user: str = "u1") -> Event:
    return Event(f"ev-{user}-{n}", user, etype, ts, amount)


def test_engine_the_first_event_anchors_and_the_refresh_stays_daily() -> None:
    engine = _engine(triggers=False)
    out = engine.apply(None, _ev(0, EV), EV)
    st = out.state
    assert st is not None and out.examples == []
    assert st.churn.last_ms == EV
    assert engine.next_due_ms(st) == EV + DAY  # the score refresh comes before any deadline
    out = engine.sweep(st, "u1", EV + DAY)
    assert (out.status, out.examples, out.churn_probability) == ("swept", [], None)


def test_engine_without_refresh_sweeps_only_at_deadlines() -> None:
    cfg = config_from_dict({"scoring": {"refresh_every_hours": 0}})
    engine = _engine(cfg, triggers=False)
    st = engine.apply(None, _ev(0, EV), EV).state
    assert st is not None
    labels = engine.churn
    assert isinstance(labels, ChurnLabels)
    points = [p.observed_ms for p in labels.schedule.points(KEY_U1, EV)]
    swept = []
    while (due := engine.next_due_ms(st)) is not None:
        swept.append((due, [e["label"] for e in engine.sweep(st, "u1", due).examples]))
    assert swept == [(t + HORIZON + 1, [1]) for t in points]  # 11 sweeps for two years


def test_engine_a_return_after_a_churn_label_is_a_win_back() -> None:
    engine = _engine()
    st = engine.apply(None, _ev(0, EV), EV).state
    assert st is not None
    labels = engine.churn
    assert isinstance(labels, ChurnLabels)
    first = labels.schedule.points(KEY_U1, EV)[0].observed_ms
    out = engine.sweep(st, "u1", first + HORIZON + 1)
    assert [e["label"] for e in out.examples] == [1]
    assert st.churn.churned_ms == first + HORIZON
    back = first + HORIZON + DAY
    out = engine.apply(st, _ev(1, back), back)
    assert "win_back.churned" in [t["reason"]["rule"] for t in out.triggers]
    assert st.churn.churned_ms == 0


def test_engine_a_quick_return_is_label_0_and_no_win_back() -> None:
    engine = _engine()
    st = engine.apply(None, _ev(0, EV), EV).state
    assert st is not None
    back = EV + 3 * DAY
    out = engine.apply(st, _ev(1, back), back)
    assert out.examples and {e["label"] for e in out.examples} == {0}
    assert not [t for t in out.triggers if t["type"] == "win_back"]


def test_engine_late_event_is_late_and_changes_nothing() -> None:
    engine = _engine()
    st = engine.apply(None, _ev(1, EV), EV).state
    assert st is not None
    before = encode_state(st)
    out = engine.apply(st, _ev(2, EV + HOUR - 1, "post"), EV + HOUR)
    assert out.status == "late"
    assert out.examples == [] and out.triggers == []
    assert encode_state(st) == before
    fresh = engine.apply(None, _ev(3, EV, user="u2"), EV + 1)
    assert fresh.status == "late"
    assert fresh.state is None


def test_the_churn_state_is_about_a_hundred_bytes() -> None:
    engine = _engine(triggers=False)
    st = engine.apply(None, _ev(0, EV, "purchase", 19.99), EV).state
    assert st is not None
    for d in range(1, 60, 3):
        engine.apply(st, _ev(d, EV + d * DAY, "purchase", 19.99), EV + d * DAY)
    assert len(msgspec.msgpack.encode(st.churn)) <= 110  # 106: 14 fields, 4 of them floats


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
        self.calls.append(("predict", x["log_recency_days"]))
        p = self.pos / self.n if self.n else 0.5
        return {True: p, False: 1.0 - p}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.calls.append(("learn", (x["log_recency_days"], y)))
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
SHORT = 1 / 24  # a one-hour horizon: a return exactly at it is released at once


def _example(recency: float, label: int, i: int = 0, weight: float = 1.0,
             horizon_ms: int = HOUR, user: str = "u") -> dict[str, Any]:
    """An example as read off the topic, observed on day i and resolved at its deadline (a
    return exactly at the horizon, or a churn), so it is released as it arrives."""
    features = dict(zip(FEATURE_NAMES, vec(), strict=True))
    features["log_recency_days"] = recency
    observed = T0 + i * DAY
    return {
        "user_id": user, "observed_at": format_rfc3339_ms(observed),
        "resolved_at": format_rfc3339_ms(observed + horizon_ms), "label": label,
        "weight": weight, "features": features,
        "customer": {"first_day": T0 // DAY, "last_day": T0 // DAY + i, "repeat_days": i},
    }


def _trainer(champion: str = RECORDING, **kwargs: Any) -> ChurnTrainer:
    return ChurnTrainer(champion, horizon_days=SHORT, **kwargs)


def test_progressive_validation_predicts_before_learning() -> None:
    trainer = _trainer()
    assert trainer.learn(_example(1.0, 1, 0)) == 1
    assert trainer.learn(_example(2.0, 0, 1)) == 1
    slot = trainer.champion
    assert slot.model.calls == [
        ("predict", 1.0), ("learn", (1.0, True)), ("predict", 2.0), ("learn", (2.0, False)),
    ]
    # Brier from the *prior* predictions: 0.5 for y=1, then 1.0 (one True seen) for y=0.
    assert slot.metrics.brier.get() == pytest.approx(((0.5 - 1) ** 2 + (1.0 - 1e-7) ** 2) / 2)
    assert slot.validated == 2
    assert slot.learned == 2
    assert trainer.labels == {0: 1, 1: 1}
    assert trainer.since_publish == 2
    status = trainer.status()
    assert status["champion"]["name"] == RECORDING
    assert status["champion"]["validated"] == 2
    assert status["examples"] == {"not_churned": 1, "churned": 1}
    assert status["shadow"] is None and status["comparison"] is None


def test_metrics_are_absent_before_the_first_label_never_minus_zero() -> None:
    summary = _trainer("logreg").champion.summary()
    assert summary == {"roc_auc": None, "log_loss": None, "brier": None, "ece": None,
                       "recent_log_loss": None, "drifts": 0, "validated": 0}


def test_progressive_validation_with_a_builtin_reports_calibration_and_drift() -> None:
    trainer = _trainer("logreg")
    for i in range(30):
        trainer.learn(_example(float(i), int(i % 3 == 0), i))
    m = trainer.status()["champion"]
    assert m["validated"] == 30
    assert 0.0 <= m["roc_auc"] <= 1.0 and m["log_loss"] > 0 and 0.0 <= m["brier"] <= 1.0
    assert 0.0 <= m["ece"] <= 1.0 and m["recent_log_loss"] > 0 and m["drifts"] >= 0


def test_returns_wait_until_the_clock_passes_observed_plus_horizon() -> None:
    trainer = ChurnTrainer(RECORDING, horizon_days=14.0)
    back = _example(1.0, 0, 0, horizon_ms=HOUR)  # returned after an hour
    assert trainer.learn(back) == 0  # waits: its horizon has not passed yet
    assert trainer.status()["waiting"] == 1
    gone = _example(2.0, 1, 13, horizon_ms=HORIZON)  # resolved on day 27
    assert trainer.learn(gone) == 2  # the clock passed day 14: both are learned now
    assert [c for c in trainer.champion.model.calls if c[0] == "learn"] == [
        ("learn", (1.0, False)), ("learn", (2.0, True))]
    assert trainer.status()["waiting"] == 0


def test_sample_weights_reach_the_model_relative_to_their_mean() -> None:
    trainer = _trainer("logreg")
    seen: list[float] = []
    inner = trainer.champion.model

    class Spy:
        def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
            return dict(inner.predict_proba_one(x))

        def learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> None:
            seen.append(w)

    trainer.champion = ModelSlot("spy", Spy())
    for i, weight in enumerate((1.0, 3.0, 8.0)):
        trainer.learn(_example(0.0, i % 2, i, weight=weight))
    assert seen == pytest.approx([1.0, 3.0 * 2 / 4, 8.0 * 3 / 12])


def test_an_example_of_another_feature_layout_is_refused() -> None:
    trainer = _trainer()
    old = _example(1.0, 1)
    old["features"] = {"recency_days": 1.0}  # layout 1
    with pytest.raises(ExampleRefused, match=f"feature layout {FEATURE_LAYOUT}"):
        trainer.learn(old)
    with pytest.raises(ExampleRefused, match="not a churn example"):
        trainer.learn({"features": {}})
    assert trainer.labels == {0: 0, 1: 0}


def test_an_example_is_learned_once_by_its_id() -> None:
    trainer = _trainer()
    e = _example(1.0, 1)
    assert trainer.learn(e) == 1
    assert trainer.learn(e) == 0  # a copy a scorer sent again
    assert trainer.skipped == 1
    assert example_id(e) == example_id({**e, "label": 0})


def test_a_restarted_trainer_learns_each_example_once_and_loses_none() -> None:
    def stream() -> list[dict[str, Any]]:
        # day i: a churn of a point of day i - 2 resolved at its deadline (the clock reaches
        # day i), and a return an hour after a point of day i (it waits until day i + 2)
        out = []
        for i in range(12):
            out.append(_example(float(i), 1, i - 2, horizon_ms=2 * DAY, user=f"c{i}"))
            out.append(_example(100.0 + i, 0, i, horizon_ms=HOUR, user=f"r{i}"))
        return out

    def run(trainer: ChurnTrainer, examples: list[dict[str, Any]], first: int) -> None:
        for offset, e in enumerate(examples[first:], start=first):
            trainer.learn(e, offset)

    whole = ChurnTrainer(RECORDING, horizon_days=2.0)
    run(whole, stream(), 0)
    crashed = ChurnTrainer(RECORDING, horizon_days=2.0)
    run(crashed, stream()[:15], 0)
    memory = crashed.memory()
    assert crashed.waiting and memory["resume_from"] < memory["learned_through"]
    restarted = ChurnTrainer(RECORDING, horizon_days=2.0)
    restarted.champion = ModelSlot(RECORDING, pickle.loads(pickle.dumps(crashed.champion.model)))
    restarted.restore(json.loads(json.dumps(memory)))
    run(restarted, stream(), memory["resume_from"])  # from where the oldest one waited
    learned = [c for c in restarted.champion.model.calls if c[0] == "learn"]
    assert learned == [c for c in whole.champion.model.calls if c[0] == "learn"]
    assert restarted.labels == whole.labels


def test_swap_warm_starts_from_the_buffer_without_validating() -> None:
    trainer = _trainer("logreg", buffer_size=3)
    for i in range(5):
        trainer.learn(_example(float(i), i % 2, i))
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


def test_shadow_and_champion_are_compared_on_the_same_examples() -> None:
    trainer = _trainer("logreg", shadow=RECORDING)
    assert trainer.shadow is not None
    for i in range(4):
        trainer.learn(_example(float(i), i % 2, i))
    shadow = trainer.shadow
    assert [c for c in shadow.model.calls if c[0] == "learn"] == [
        ("learn", (float(i), bool(i % 2))) for i in range(4)
    ]
    assert shadow.validated == trainer.champion.validated == 4
    status = trainer.status()
    assert status["shadow"]["name"] == RECORDING
    paired = status["comparison"]
    assert paired["examples"] == 4
    assert (paired["champion"]["name"], paired["shadow"]["name"]) == ("logreg", RECORDING)
    assert paired["champion"]["brier"] == status["champion"]["brier"]
    assert paired["shadow"]["brier"] == status["shadow"]["brier"]


def test_a_late_shadow_is_compared_only_on_the_examples_both_saw() -> None:
    trainer = _trainer("logreg")
    for i in range(3):
        trainer.learn(_example(float(i), 1, i))
    trainer.start_shadow(RECORDING)
    assert trainer.shadow is not None
    assert trainer.shadow.learned == 3 and trainer.shadow.validated == 0
    trainer.learn(_example(9.0, 0, 9))
    assert trainer.shadow.validated == 1 and trainer.shadow.learned == 4
    paired = trainer.status()["comparison"]
    assert paired["examples"] == 1  # not the champion's 4
    assert paired["champion"]["validated"] == 1 and trainer.champion.validated == 4


def test_promote_moves_the_shadow_to_champion() -> None:
    trainer = _trainer("logreg", shadow=RECORDING)
    trainer.learn(_example(1.0, 1))
    shadow = trainer.shadow
    trainer.since_publish = 0
    trainer.promote()
    assert trainer.champion is shadow
    assert trainer.shadow is None and trainer.comparison is None
    assert trainer.champion.validated == 1  # keeps what it learned and its metrics
    assert trainer.since_publish == 1
    with pytest.raises(ValueError, match="no shadow"):
        trainer.promote()


def test_next_version_is_monotonic() -> None:
    trainer = _trainer("logreg")
    trainer.learn(_example(1.0, 1))
    v1 = trainer.next_version()
    assert trainer.since_publish == 0
    trainer.version = v1 + 10_000_000  # e.g. a version restored from a clock ahead of ours
    assert trainer.next_version() == v1 + 10_000_001


def test_bgnbd_is_refitted_from_the_customers_examples_carry() -> None:
    trainer = ChurnTrainer("bgnbd", horizon_days=SHORT, refit_days=7.0)
    assert trainer.params is None
    for u in range(200):  # customers with 0-3 repeat days, first seen on day 0
        x = u % 4
        e = _example(0.0, 1, 0, user=f"c{u}")
        e["customer"] = {"first_day": T0 // DAY, "last_day": T0 // DAY + 5 * x, "repeat_days": x}
        trainer.learn(e)
    assert trainer.params is None  # the first fit waits a day of event time
    late = _example(0.0, 1, 2, user="c0")
    trainer.learn(late)
    assert trainer.params is not None and trainer.fitted_at_ms == T0 + 2 * DAY + HOUR
    meta = trainer.artifact_meta()
    assert meta["layout"] == FEATURE_LAYOUT and meta["features"] == list(FEATURE_NAMES)
    bg, mbg = trainer.params.bgnbd, trainer.params.mbgnbd
    assert mbg is not None
    assert meta["bgnbd"] == {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b}
    assert meta["mbgnbd"] == {"r": mbg.r, "alpha": mbg.alpha, "a": mbg.a, "b": mbg.b}
    restored = ChurnTrainer("bgnbd", horizon_days=SHORT)
    carried = {"bgnbd": meta["bgnbd"], "mbgnbd": meta["mbgnbd"]}
    restored.restore(json.loads(json.dumps(trainer.memory() | carried)))
    assert restored.params == trainer.params and len(restored.sample) == 200


def test_the_bgnbd_model_is_bgnbds_own_churn_probability() -> None:
    model = registry.build_model("bgnbd")
    x = as_features(vec())
    x["bgnbd_logit_return"] = math.log(3.0)  # a return is 3:1
    model.learn_one(x, True)
    assert model.predict_proba_one(x)[True] == pytest.approx(0.25)


def test_the_mbgnbd_model_is_mbgnbds_own_churn_probability() -> None:
    model = registry.build_model("mbgnbd")
    x = as_features(vec())
    x["mbgnbd_logit_return"] = math.log(4.0)  # a return is 4:1
    x["bgnbd_logit_return"] = math.log(3.0)  # not read
    model.learn_one(x, True)
    assert model.predict_proba_one(x)[True] == pytest.approx(0.2)


def test_artifacts_of_another_layout_are_refused_before_unpickling(canary_blob: bytes) -> None:
    assert layout_problem({"layout": FEATURE_LAYOUT, "features": list(FEATURE_NAMES)}) is None
    old = sign_artifact(Canary(), {"name": "logreg", "version": 3}, KEY)  # engage 0.1: no layout
    with pytest.raises(ArtifactRejected) as info:
        load_artifact(old, KEY, check=layout_problem)
    assert info.value.reason == "layout"
    assert "trained on feature layout 1" in str(info.value)
    assert UNPICKLED == []


def test_predictor_none_before_a_model_and_version_ordering() -> None:
    p = Predictor()
    assert p.predict(vec()) is None
    a, b = ModelSlot(RECORDING), ModelSlot(RECORDING)
    b.model.learn_one(as_features(vec()), True)  # b predicts 1.0, a predicts 0.5
    params = PopulationParams(BgNbdParams(1.0, 2.0, 3.0, 4.0))
    assert p.load(a.model, "a", 5, params) is True
    assert p.predict(vec()) == 0.5 and p.bgnbd() == params
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
    assert slot.model.calls == [("predict", 7.0)]  # log_recency_days is the first feature


def test_predictor_drives_the_engine_probability() -> None:
    p = Predictor()
    engine = _engine(predict=p.predict, triggers=False)
    st = engine.apply(None, _ev(1, EV), EV).state
    assert isinstance(st, UserState)
    assert engine.sweep(st, "u1", EV + DAY).churn_probability is None
    assert engine.score_record(st, "u1", EV + DAY)["churn_probability"] is None
    p.load(ModelSlot(RECORDING).model, "r", 1)
    assert engine.sweep(st, "u1", EV + 2 * DAY).churn_probability == 0.5
    assert engine.score_record(st, "u1", EV + 2 * DAY)["churn_probability"] == 0.5


def test_round6_is_round_to_six_decimals_bit_for_bit() -> None:
    """Examples' features go through round6 instead of round(x, 6): the same floats, next
    to decimal ties, at zero (its sign), large and non-finite values included."""
    import random
    import struct

    rng = random.Random(11)
    values = [0.0, -0.0, 5e-7, -5e-7, 2.5e-6, -2.5e-6, 12.0, -12.0, 2147.4836475,
              -2147.4836485, 1e9, 1e300, -1e-300, math.inf, -math.inf]
    for _ in range(20_000):
        scale = rng.choice((1e-9, 1e-6, 1e-3, 1.0, 10.0, 3000.0))
        values.append(rng.uniform(-scale, scale))
        tie = (rng.randint(-3_000_000_000, 3_000_000_000) + 0.5) / 1e6
        values += [tie, math.nextafter(tie, math.inf), math.nextafter(tie, -math.inf)]
    for value in values:
        assert struct.pack("<d", round6(value)) == struct.pack("<d", round(value, 6)), value
    assert math.isnan(round6(math.nan))
