"""Online logistic regression around a prior log-odds (an offset), as a river classifier.

p = sigmoid(prior + intercept + sum_i w_i z_i), where `prior` is one input feature taken as
is (BG/NBD's log-odds of churn) and z_i are the other features, standardised online. The
weights start at 0, so before any label the model *is* the prior; labels only teach the
corrections, which L2 pulls back towards 0. A churn label arrives a horizon after its
observation point, so a model that must learn everything from labels is blind for the first
horizon and extrapolates to silences it has not yet seen resolve; the prior is fitted from the
purchase summaries alone, with no labels, and covers both. river's linear models have no
offset (their weights all start equal and are all learned), hence this small class.

AdaGrad per coordinate, L2 on the weights (not the intercept), and sample weights divided by
their running mean so that Horvitz-Thompson weights of any scale give steps of the usual size.
A feature is clipped to the range it had in the examples learned so far: a correction learned
on the silences labels have covered is not extrapolated to longer ones (labels of long
silences arrive last); there the prior speaks, plus the correction at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from river import base

from scoring.churn.calibration import sigmoid


class OffsetLogisticRegression(base.Classifier):
    """Logistic regression whose log-odds start at (and are corrections to) `offset`."""

    def __init__(
        self,
        offset: str,
        offset_sign: float = 1.0,
        learning_rate: float = 0.05,
        l2: float = 1e-3,
        max_abs_z: float = 8.0,
        support: tuple[str, ...] = (),
        ignore: tuple[str, ...] = (),
    ) -> None:
        self.offset = offset
        self.support = support
        self.ignore = ignore
        self.offset_sign = offset_sign
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_abs_z = max_abs_z
        self.weights: dict[Hashable, float] = {}
        self.intercept = 0.0
        self._squares: dict[Hashable, float] = {}  # AdaGrad accumulators (key "" = intercept)
        self._count: dict[Hashable, float] = {}  # Welford: examples, mean, M2 per feature
        self._mean: dict[Hashable, float] = {}
        self._m2: dict[Hashable, float] = {}
        self._low: dict[Hashable, float] = {}  # range of each feature over the examples learned
        self._high: dict[Hashable, float] = {}
        self._weight_total = 0.0
        self._examples = 0
        # (x, z, log-odds) of the latest prediction since the last update: learn_one after
        # predict_proba_one on the same x (progressive validation) reuses them
        self._predicted: tuple[dict[Hashable, Any], dict[Hashable, float], float] | None = None

    def _scaled(self, x: dict[Hashable, Any]) -> dict[Hashable, float]:
        out: dict[Hashable, float] = {}
        # hot (every prediction and example): attributes read once, and min/max written out
        # as the comparisons the builtins make (min(a, b) is b only if b < a), same results
        offset, ignore, count, m2 = self.offset, self.ignore, self._count, self._m2
        low, high, means, bound = self._low, self._high, self._mean, self.max_abs_z
        for name, value in x.items():
            if name == offset or name in ignore:
                continue
            n = count.get(name, 0.0)
            if n < 2:
                continue
            sd = math.sqrt(m2[name] / n)
            if sd > 0:
                value = float(value)
                hi, lo = high[name], low[name]
                seen = value if value < hi else hi
                seen = seen if seen > lo else lo
                z = (seen - means[name]) / sd
                z = z if z < bound else bound
                out[name] = z if z > -bound else -bound
        return out

    def _log_odds(self, x: dict[Hashable, Any], z: dict[Hashable, float]) -> float:
        prior = self.offset_sign * float(x.get(self.offset, 0.0))
        return prior + self.intercept + sum(self.weights.get(k, 0.0) * v for k, v in z.items())

    def _supported(self, x: dict[Hashable, Any]) -> bool:
        """False when a `support` feature lies beyond anything learned: the prior alone."""
        for name in self.support:
            high = self._high.get(name)
            if high is None or float(x.get(name, 0.0)) > high:
                return False
        return True

    def predict_proba_one(
        self, x: dict[Hashable, Any], **kwargs: Any
    ) -> dict[bool | str | int, float]:
        if self._supported(x):
            z = self._scaled(x)
            log_odds = self._log_odds(x, z)
            self._predicted = (x, z, log_odds)
            p = sigmoid(log_odds)
        else:
            p = sigmoid(self.offset_sign * float(x.get(self.offset, 0.0)))
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict[Hashable, Any], y: bool | str | int, w: float = 1.0) -> None:
        if w < 0 or not math.isfinite(w):
            raise ValueError("sample weight must be finite and >= 0")
        self._examples += 1
        self._weight_total += w
        scale = w * self._examples / self._weight_total if self._weight_total > 0 else 0.0
        predicted = getattr(self, "_predicted", None)  # (models pickled before it: None)
        self._predicted = None
        if predicted is not None and predicted[0] == x:  # the model has not moved since
            z, log_odds = predicted[1], predicted[2]
        else:
            z = self._scaled(x)
            log_odds = self._log_odds(x, z)
        residual = scale * (sigmoid(log_odds) - float(bool(y)))
        # hot (every example): attributes read once, the updates written out in place
        weights, squares, rate, l2 = self.weights, self._squares, self.learning_rate, self.l2
        sqrt = math.sqrt
        # AdaGrad steps: the intercept (key "", no L2), then each weight
        g = residual + 0.0
        acc = squares.get("", 0.0) + g * g
        squares[""] = acc
        if not acc <= 0:
            self.intercept -= rate * g / sqrt(acc)
        for name, value in z.items():
            old = weights.get(name, 0.0)
            g = residual * value + l2 * old
            acc = squares.get(name, 0.0) + g * g
            squares[name] = acc
            if acc <= 0:
                continue
            weights[name] = old - rate * g / sqrt(acc)
        # the features' running mean and variance (Welford) and range, the offset aside
        offset, ignore = self.offset, self.ignore
        count, means, m2 = self._count, self._mean, self._m2
        lows, highs = self._low, self._high
        for name, raw in x.items():
            if name == offset or name in ignore:
                continue
            value = float(raw)
            n = count.get(name, 0.0) + 1.0
            mean = means.get(name, 0.0)
            delta = value - mean
            mean += delta / n
            count[name] = n
            means[name] = mean
            m2[name] = m2.get(name, 0.0) + delta * (value - mean)
            low, high = lows.get(name, value), highs.get(name, value)
            lows[name] = value if value < low else low  # min(low, value), max(high, value)
            highs[name] = value if value > high else high
