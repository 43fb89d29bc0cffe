"""The offset logistic regression and the Platt calibrator."""

from __future__ import annotations

import math
import pickle

import pytest

from scoring.churn.calibration import PlattCalibrator
from scoring.churn.offset_model import OffsetLogisticRegression


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _examples(n: int) -> list[tuple[dict[str, float], bool]]:
    """Churn is likelier with larger `silence`; the prior knows nothing."""
    out = []
    for i in range(n):
        silence = (i * 37 % 100) / 10
        churned = (i * 61 % 100) / 100 < _sigmoid(silence - 5)
        out.append(({"prior": 0.0, "silence": silence}, churned))
    return out


def test_before_any_label_the_model_is_the_prior() -> None:
    model = OffsetLogisticRegression("prior", offset_sign=-1.0)
    assert model.predict_proba_one({"prior": 2.0, "silence": 4.0})[True] == _sigmoid(-2.0)


def test_it_learns_the_correction_and_does_not_extrapolate_beyond_support() -> None:
    model = OffsetLogisticRegression("prior", support=("silence",))
    for x, y in _examples(3000):
        model.learn_one(x, y)
    assert model.weights["silence"] > 1.0
    low = model.predict_proba_one({"prior": 0.0, "silence": 1.0})[True]
    high = model.predict_proba_one({"prior": 0.0, "silence": 9.0})[True]
    assert low < 0.2 < 0.8 < high
    beyond = model.predict_proba_one({"prior": 0.7, "silence": 50.0})[True]
    assert beyond == _sigmoid(0.7)  # longer than any silence learned: the prior alone
    clone = pickle.loads(pickle.dumps(model))
    assert clone.predict_proba_one({"prior": 0.0, "silence": 9.0})[True] == high


def test_uniform_sample_weights_change_nothing() -> None:
    plain, weighted = OffsetLogisticRegression("prior"), OffsetLogisticRegression("prior")
    for x, y in _examples(500):
        plain.learn_one(x, y)
        weighted.learn_one(x, y, w=64.0)
    assert weighted.weights == plain.weights and weighted.intercept == plain.intercept
    with pytest.raises(ValueError, match="sample weight"):
        plain.learn_one({"prior": 0.0}, True, w=-1.0)


def test_platt_recovers_slope_and_intercept_exactly_from_expected_labels() -> None:
    calibrator = PlattCalibrator(window=1000, refit_every=10_000, min_examples=2)
    assert calibrator.calibrate(0.3) == 0.3  # identity until fitted
    for i in range(1, 100):
        raw = i / 100
        truth = _sigmoid(2.0 * math.log(raw / (1 - raw)) + 0.5)
        calibrator.learn(raw, 1, truth)
        calibrator.learn(raw, 0, 1 - truth)
    calibrator.refit()
    assert calibrator.slope == pytest.approx(2.0, abs=1e-6)
    assert calibrator.intercept == pytest.approx(0.5, abs=1e-6)
    assert calibrator.calibrate(0.5) == pytest.approx(_sigmoid(0.5))
    with pytest.raises(ValueError, match="weight"):
        calibrator.learn(0.5, 1, -1.0)
