"""Churn metrics on hand-computed examples, ties included."""

from __future__ import annotations

import pytest

from scoring.churn.evaluation import (
    average_precision,
    brier_score,
    calibration_table,
    expected_calibration_error,
    roc_auc,
    top_share,
)

SCORES = [0.9, 0.8, 0.8, 0.3, 0.1]
LABELS = [1, 1, 0, 0, 1]


def test_roc_auc_counts_a_tie_as_one_half() -> None:
    # churner pairs: 0.9 beats both (2); 0.8 ties 0.8 (0.5) and beats 0.3 (1); 0.1 loses (0)
    assert roc_auc(SCORES, LABELS) == pytest.approx(3.5 / 6)
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5


def test_average_precision_steps_once_per_distinct_score() -> None:
    # thresholds 0.9: P=1, R+1/3; 0.8: P=2/3, R+1/3; 0.3: no gain; 0.1: P=3/5, R+1/3
    assert average_precision(SCORES, LABELS) == pytest.approx(34 / 45)
    assert average_precision([5, 5, 5, 5], [0, 1, 0, 1]) == pytest.approx(0.5)


def test_brier() -> None:
    assert brier_score(SCORES, LABELS) == pytest.approx((0.01 + 0.04 + 0.64 + 0.09 + 0.81) / 5)


def test_calibration_deciles_keep_ties_together_and_ece() -> None:
    table = calibration_table(SCORES, LABELS, bins=2)
    assert [(b.lowest, b.highest, b.count) for b in table] == [(0.1, 0.3, 2), (0.8, 0.9, 3)]
    assert [b.mean_predicted for b in table] == pytest.approx([0.2, 2.5 / 3])
    assert [b.observed_rate for b in table] == pytest.approx([0.5, 2 / 3])
    assert expected_calibration_error(table) == pytest.approx((2 * 0.3 + 3 * (1 / 6)) / 5)
    constant = calibration_table([0.4] * 10, [1] * 4 + [0] * 6)
    assert [(b.count, b.observed_rate) for b in constant] == [(10, 0.4)]
    assert constant[0].mean_predicted == pytest.approx(0.4)
    assert expected_calibration_error(constant) == pytest.approx(0.0)


def test_top_share_counts_a_straddling_tie_group_pro_rata() -> None:
    top = top_share(SCORES, LABELS, 0.4)  # 2 users: the 0.9 and half of the 0.8 pair
    assert (top.users, top.churners) == (2.0, 1.5)
    assert top.precision == pytest.approx(0.75)
    assert top.capture == pytest.approx(0.5)
    assert top.lift == pytest.approx(0.75 / 0.6)
    whole = top_share(SCORES, LABELS, 1.0)
    assert (whole.capture, whole.lift) == (1.0, 1.0)


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="2 scores but 1 labels"):
        roc_auc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="one churned and one retained"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="not finite"):
        brier_score([float("nan")], [1])
    with pytest.raises(ValueError, match="not 0/1"):
        brier_score([0.5], [2])
    with pytest.raises(ValueError, match="share must be"):
        top_share(SCORES, LABELS, 0.0)
    with pytest.raises(ValueError, match="no scores"):
        calibration_table([], [])
