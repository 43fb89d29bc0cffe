"""Platt scaling refitted on a bounded window of recent out-of-sample predictions.

An online classifier's raw probabilities drift off calibration when the churn rate moves or
the learning rate is tuned for ranking. Platt's two-parameter logistic map
p' = sigmoid(slope * logit(p) + intercept) keeps the ranking (it is monotone) and fixes the
level and the spread. It is fitted by weighted Newton-Raphson on the last `window` pairs of
(prediction made *before* the model learned the example, label, weight), so it measures the
model as it is used; refitting every `refit_every` examples keeps the cost per example O(1)
amortised. Memory is the window (trainer-side, never per user).
"""

from __future__ import annotations

import math
from collections import deque

_EPS = 1e-7


def _logit(p: float) -> float:
    p = min(1.0 - _EPS, max(_EPS, p))
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    """1 / (1 + e^-z) without overflow."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class PlattCalibrator:
    """Monotone recalibration of probabilities; the identity until it has `min_examples`."""

    def __init__(
        self, window: int = 20_000, refit_every: int = 500, min_examples: int = 200
    ) -> None:
        if window < 2 or refit_every < 1 or min_examples < 2:
            raise ValueError("window >= 2, refit_every >= 1 and min_examples >= 2 are required")
        self.pairs: deque[tuple[float, int, float]] = deque(maxlen=window)
        self.refit_every = refit_every
        self.min_examples = min_examples
        self.slope = 1.0
        self.intercept = 0.0
        self.fitted = False
        self._since_fit = 0

    def learn(self, probability: float, label: bool | int, weight: float = 1.0) -> None:
        """One out-of-sample prediction and its outcome."""
        if weight < 0 or not math.isfinite(weight):
            raise ValueError("weight must be finite and >= 0")
        self.pairs.append((_logit(probability), int(bool(label)), weight))
        self._since_fit += 1
        if self._since_fit >= self.refit_every and len(self.pairs) >= self.min_examples:
            self.refit()

    def refit(self) -> None:
        """Weighted maximum likelihood of (slope, intercept) over the window (Newton)."""
        self._since_fit = 0
        labels = {y for _, y, w in self.pairs if w > 0}
        if labels != {0, 1}:
            return  # one class only: nothing to calibrate against
        a, b = self.slope, self.intercept
        for _ in range(50):
            g_a = g_b = h_aa = h_ab = h_bb = 0.0
            for z, y, w in self.pairs:
                p = sigmoid(a * z + b)
                r = w * (p - y)
                v = w * p * (1.0 - p)
                g_a += r * z
                g_b += r
                h_aa += v * z * z
                h_ab += v * z
                h_bb += v
            h_aa += 1e-9
            h_bb += 1e-9
            det = h_aa * h_bb - h_ab * h_ab
            if det <= 0:
                return
            step_a = (h_bb * g_a - h_ab * g_b) / det
            step_b = (h_aa * g_b - h_ab * g_a) / det
            a, b = a - step_a, b - step_b
            if abs(step_a) < 1e-9 and abs(step_b) < 1e-9:
                break
        if math.isfinite(a) and math.isfinite(b):
            self.slope, self.intercept, self.fitted = a, b, True

    def calibrate(self, probability: float) -> float:
        if not self.fitted:
            return probability
        return sigmoid(self.slope * _logit(probability) + self.intercept)
