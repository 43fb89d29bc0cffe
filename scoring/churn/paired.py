"""Is one churn ranking better than another on the same users? DeLong's paired test.

Two scorers ranked the same users; their ROC AUCs differ by a few thousandths. Whether that is
a real difference or the luck of who is in the sample is what DeLong, DeLong & Clarke-Pearson
(1988) answer: the AUC is a two-sample U-statistic, and its structural components (per churner,
the share of non-churners ranked below; per non-churner, the share of churners ranked above)
give the covariance of two AUCs measured on the same users in closed form. Computed with
midranks (Sun & Xu 2014), O(n log n); ties count one half, as in scoring.churn.evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class PairedAuc:
    """AUC(a) - AUC(b) on the same users, with its standard error and 95 % interval."""

    delta: float
    se: float
    low: float
    high: float
    p_value: float  # two-sided, H0: equal AUCs


def _components(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    both = stats.rankdata(np.concatenate([pos, neg]))
    v01 = (both[:m] - stats.rankdata(pos)) / n  # per churner: share of non-churners below
    v10 = 1.0 - (both[m:] - stats.rankdata(neg)) / m  # per non-churner: share of churners above
    return v01, v10


def paired_auc(
    scores_a: Sequence[float], scores_b: Sequence[float], labels: Sequence[int]
) -> PairedAuc:
    """AUC(a) - AUC(b) (higher score = churn; label 1 = churned) with DeLong's variance."""
    y = np.asarray(labels, dtype=np.int64) == 1
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if not (len(a) == len(b) == len(y)):
        raise ValueError("scores and labels must have equal lengths")
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError("need at least two users of each label")
    a01, a10 = _components(a, y)
    b01, b10 = _components(b, y)
    delta = float(a01.mean() - b01.mean())
    d01, d10 = a01 - b01, a10 - b10
    var = float(np.var(d01, ddof=1)) / m + float(np.var(d10, ddof=1)) / n
    se = math.sqrt(max(var, 0.0))
    p = float(2.0 * stats.norm.sf(abs(delta) / se)) if se > 0 else float(delta == 0.0)
    return PairedAuc(delta, se, delta - Z95 * se, delta + Z95 * se, p)
