"""MBG/NBD: likelihood gradient, parameter recovery on simulated customers, closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoring.churn.mbgnbd import (
    MbgNbdParams,
    _gradient,
    _log_likelihood,
    fit_mbgnbd,
    mbgnbd_features,
    probability_alive,
    probability_no_purchase,
)


def _simulate(
    p: MbgNbdParams, customers: int, age: float, seed: int
) -> tuple[list[int], list[float], list[float], list[bool]]:
    """Customers who first bought at 0 and are observed at `age` (days): x, t_x, T, and
    whether each one bought again within 30 days after that (for the calibration check)."""
    rng = np.random.default_rng(seed)
    xs, t_xs, ages, returned = [], [], [], []
    for _ in range(customers):
        lam = rng.gamma(p.r, 1.0 / p.alpha)
        drop = rng.beta(p.a, p.b)
        t, x, last, alive = 0.0, 0, 0.0, rng.random() >= drop  # may die after the first
        nxt = math.inf
        while alive:
            t += rng.exponential(1.0 / lam)
            if t > age:
                nxt = t
                break
            x, last = x + 1, t
            alive = rng.random() >= drop
        xs.append(x)
        t_xs.append(last)
        ages.append(age)
        returned.append(nxt <= age + 30.0)
    return xs, t_xs, ages, returned


def test_gradient_matches_finite_differences() -> None:
    x = np.array([0.0, 1.0, 2.0, 7.0])
    t_x = np.array([0.0, 10.0, 35.0, 80.0])
    big_t = np.array([40.0, 60.0, 90.0, 100.0])
    p = np.array([0.5, 40.0, 0.8, 1.5])
    g = _gradient(*p, x, t_x, big_t).sum(axis=1)
    for i in range(4):
        e = np.zeros(4)
        e[i] = 1e-6 * p[i]
        numeric = (
            _log_likelihood(*(p + e), x, t_x, big_t).sum()
            - _log_likelihood(*(p - e), x, t_x, big_t).sum()
        ) / (2 * e[i])
        assert g[i] == pytest.approx(numeric, rel=1e-6)


def test_fit_recovers_simulated_parameters_and_its_churn_probability_is_calibrated() -> None:
    truth = MbgNbdParams(r=0.6, alpha=20.0, a=0.8, b=2.5)
    xs, t_xs, ages, returned = _simulate(truth, 20_000, 200.0, seed=7)
    fit = fit_mbgnbd(xs, t_xs, ages)
    assert fit.converged
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit.params, name) == pytest.approx(getattr(truth, name), rel=0.15)
    predicted = [
        probability_no_purchase(fit.params, 30.0, x, t, big_t)
        for x, t, big_t in zip(xs, t_xs, ages, strict=True)
    ]
    observed = 1.0 - sum(returned) / len(returned)
    assert sum(predicted) / len(predicted) == pytest.approx(observed, abs=0.01)


def test_one_time_buyers_can_be_dead_and_features_match_the_closed_forms() -> None:
    p = MbgNbdParams(0.5, 40.0, 0.7, 1.4)
    young, old = probability_alive(p, 0, 0.0, 10.0), probability_alive(p, 0, 0.0, 300.0)
    assert 0.0 < old < young < 1.0  # a long-silent one-time buyer is less likely alive
    for x, t_x, big_t in ((0, 0.0, 120.0), (3, 50.0, 200.0), (12, 190.0, 200.0)):
        logit_return, logit_alive = mbgnbd_features(p, 60.0, x, t_x, big_t)
        silent = probability_no_purchase(p, 60.0, x, t_x, big_t)
        alive = probability_alive(p, x, t_x, big_t)
        assert logit_return == pytest.approx(math.log((1 - silent) / silent))
        assert logit_alive == pytest.approx(math.log(alive / (1 - alive)))
    with pytest.raises(ValueError):
        probability_alive(p, 1, 20.0, 10.0)
    with pytest.raises(ValueError):
        MbgNbdParams(0.0, 1.0, 1.0, 1.0)
