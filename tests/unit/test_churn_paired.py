"""DeLong's paired comparison of two ROC AUCs on the same users."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.churn.evaluation import roc_auc
from scoring.churn.paired import paired_auc


def test_delta_is_the_difference_of_the_aucs_and_its_interval_matches_a_bootstrap() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    a = y + rng.normal(0, 1.2, 2000)
    b = np.round(y + rng.normal(0, 1.0, 2000))  # ties, counted one half
    d = paired_auc(list(a), list(b), list(y))
    assert d.delta == pytest.approx(roc_auc(list(a), list(y)) - roc_auc(list(b), list(y)))
    assert d.low < d.delta < d.high and 0.0 <= d.p_value <= 1.0
    boot = []
    for _ in range(200):
        i = rng.integers(0, 2000, 2000)
        boot.append(roc_auc(list(a[i]), list(y[i])) - roc_auc(list(b[i]), list(y[i])))
    assert d.se == pytest.approx(float(np.std(boot)), rel=0.25)


def test_a_scorer_against_itself_and_misuse() -> None:
    s, y = [0.1, 0.4, 0.35, 0.8, 0.7], [0, 0, 1, 1, 1]
    d = paired_auc(s, s, y)
    assert (d.delta, d.se, d.p_value) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        paired_auc(s, s[:4], y)
    with pytest.raises(ValueError):
        paired_auc(s, s, [0, 1, 1, 1, 1])
