"""BG/NBD: the published CDNOW fit, lifetimes' figures, quadrature and simulation checks."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from scipy import integrate, special

from benchmarks.datasets import load_cdnow, load_cdnow_summary
from scoring.churn import bgnbd
from scoring.churn.bgnbd import (
    BgNbdParams,
    expected_purchases,
    expected_purchases_new_customer,
    fit_bgnbd,
    logit_alive,
    probability_alive,
    probability_no_purchase,
)
from scoring.churn.lifetime import LifetimeConfig, LifetimeState, observe, summary_at
from scoring.churn.priors import PopulationParams
from scoring.timeutil import MS_PER_DAY

# lifetimes 0.11.3 BetaGeoFitter on cdnow_customers_summary.csv (cross-checked in a scratch venv)
LIFETIMES = BgNbdParams(0.24259292827982148, 4.413532265271809, 0.7928859664406578,
                        2.4257523826257374)


def test_fit_reproduces_the_published_cdnow_parameters_and_likelihood() -> None:
    rows = load_cdnow_summary()
    fit = fit_bgnbd(*zip(*rows, strict=True))
    p = fit.params
    # Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
    assert (round(p.r, 3), round(p.alpha, 3), round(p.a, 3), round(p.b, 3)) == (
        0.243, 4.414, 0.793, 2.426)
    assert fit.log_likelihood == pytest.approx(-9582.4256, abs=1e-3)
    assert fit.converged and fit.customers == 2357
    for ours, theirs in zip((p.r, p.alpha, p.a, p.b),
                            (LIFETIMES.r, LIFETIMES.alpha, LIFETIMES.a, LIFETIMES.b), strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5)


def test_lifetime_state_rebuilds_the_published_summary_from_the_transactions() -> None:
    end = date(1997, 9, 30)
    config = LifetimeConfig(90.0)
    states: dict[int, LifetimeState] = {}
    for row in sorted(load_cdnow(), key=lambda r: r.day):
        if row.day <= end:
            ts = (row.day - date(1970, 1, 1)).days * MS_PER_DAY
            observe(states.setdefault(int(row.customer), LifetimeState()), ts, row.amount, config)
    now = (end - date(1970, 1, 1)).days * MS_PER_DAY
    published = load_cdnow_summary()
    assert len(states) == len(published) == 2357
    for customer, (x, t_x, big_t) in enumerate(published, start=1):
        s = summary_at(states[customer], now)
        assert (s.frequency, round(s.recency / 7, 2), round(s.age / 7, 2)) == (x, t_x, big_t)


def test_days_and_weeks_give_the_same_shape_parameters() -> None:
    x, t_x, big_t = zip(*load_cdnow_summary(), strict=True)
    weeks = fit_bgnbd(x, t_x, big_t).params
    days = fit_bgnbd(x, [v * 7 for v in t_x], [v * 7 for v in big_t]).params
    assert days.alpha == pytest.approx(7 * weeks.alpha, rel=1e-5)
    for name in ("r", "a", "b"):
        assert getattr(days, name) == pytest.approx(getattr(weeks, name), rel=1e-5)


def test_per_customer_figures_match_lifetimes() -> None:
    assert expected_purchases(LIFETIMES, 39, 2, 30.43, 38.86) == pytest.approx(
        1.2259104241744068, rel=1e-9)
    assert probability_alive(LIFETIMES, 2, 30.43, 38.86) == pytest.approx(0.72660914, abs=1e-8)
    assert probability_alive(LIFETIMES, 0, 0, 38.86) == 1.0
    assert expected_purchases_new_customer(LIFETIMES, 39) == pytest.approx(
        1.195016228446194, rel=1e-9)


def _expected_by_quadrature(p: BgNbdParams, h: float, x: int, t_x: float, big_t: float) -> float:
    """P(alive) E[(1 - ((alpha+T)/(alpha+T+p h))^(r+x)) / p] with p ~ Beta(a, b + x)."""
    def integrand(q: float) -> float:
        density = math.exp((p.a - 1) * math.log(q) + (p.b + x - 1) * math.log1p(-q)
                           - special.betaln(p.a, p.b + x))
        silent = ((p.alpha + big_t) / (p.alpha + big_t + q * h)) ** (p.r + x)
        return density * (1 - silent) / q

    value, _err = integrate.quad(integrand, 0, 1, limit=200, epsabs=1e-13, epsrel=1e-11)
    return probability_alive(p, x, t_x, big_t) * float(value)


@pytest.mark.parametrize("params", [LIFETIMES, BgNbdParams(1.3, 20.0, 2.5, 6.0)])
@pytest.mark.parametrize("case", [(0, 0.0, 10.0, 5.0), (2, 30.43, 38.86, 39.0),
                                  (15, 200.0, 210.0, 90.0), (1, 1.0, 400.0, 400.0)])
def test_expected_purchases_equals_the_integral_over_the_dropout_posterior(
    params: BgNbdParams, case: tuple[int, float, float, float]
) -> None:
    x, t_x, big_t, h = case
    assert expected_purchases(params, h, x, t_x, big_t) == pytest.approx(
        _expected_by_quadrature(params, h, x, t_x, big_t), rel=1e-7)


def test_closed_forms_by_hand() -> None:
    p = BgNbdParams(r=1.0, alpha=2.0, a=1.0, b=3.0)
    # x = 2, t_x = 4, T = 8: e^D = a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x) = 1/4 (10/6)^3
    odds = 0.25 * (10 / 6) ** 3
    assert probability_alive(p, 2, 4.0, 8.0) == pytest.approx(1 / (1 + odds), rel=1e-12)
    assert logit_alive(p, 2, 4.0, 8.0) == pytest.approx(-math.log(odds), rel=1e-12)
    # no purchase in 5 more: 1 - P(alive) (1 - (10/15)^3)
    assert probability_no_purchase(p, 5.0, 2, 4.0, 8.0) == pytest.approx(
        1 - (1 - (10 / 15) ** 3) / (1 + odds), rel=1e-12)
    with pytest.raises(ValueError, match="a != 1"):
        expected_purchases(p, 5.0, 2, 4.0, 8.0)


def _simulate(p: BgNbdParams, n: int, calibration: float, holdout: float, seed: int) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD customers born at uniform times in [0, calibration/2]; summaries at
    `calibration` and whether each bought in (calibration, calibration + holdout]."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(p.r, 1 / p.alpha, n)
    drops = rng.beta(p.a, p.b, n)
    births = rng.uniform(0, calibration / 2, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    bought_later = np.zeros(n, dtype=bool)
    for i in range(n):
        t = births[i]
        while True:
            t += rng.exponential(1 / rates[i])
            if t > calibration + holdout:
                break
            if t <= calibration:
                x[i] += 1
                t_x[i] = t - births[i]
            else:
                bought_later[i] = True
                break
            if rng.random() < drops[i]:
                break
    return x, t_x, calibration - births, bought_later


def test_simulated_population_recovers_parameters_and_churn_probability() -> None:
    truth = BgNbdParams(r=0.8, alpha=10.0, a=1.5, b=4.0)
    x, t_x, big_t, bought = _simulate(truth, 20_000, 100.0, 30.0, seed=11)
    fit = fit_bgnbd(x, t_x, big_t).params
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(truth, name), rel=0.15)
    p0 = np.array([probability_no_purchase(fit, 30.0, xi, ti, Ti)
                   for xi, ti, Ti in zip(x, t_x, big_t, strict=True)])
    silent = ~bought
    # calibrated in total and by decile of the prediction (binomial noise: 20,000 customers)
    assert abs(p0.sum() - silent.sum()) < 3 * math.sqrt((p0 * (1 - p0)).sum()) + 20
    order = np.argsort(p0)
    for chunk in np.array_split(order, 10):
        assert abs(p0[chunk].mean() - silent[chunk].mean()) < 0.03


def test_gradient_matches_finite_differences() -> None:
    x = np.array([0.0, 1.0, 4.0, 10.0])
    t_x = np.array([0.0, 3.0, 20.0, 35.0])
    big_t = np.array([10.0, 30.0, 40.0, 36.0])
    q = (0.5, 3.0, 1.5, 2.0)
    analytic = bgnbd._gradient(*q, x, t_x, big_t).sum(axis=1)
    for i in range(4):
        up, down = list(q), list(q)
        up[i] += 1e-6
        down[i] -= 1e-6
        numeric = (bgnbd._log_likelihood(*up, x, t_x, big_t).sum()
                   - bgnbd._log_likelihood(*down, x, t_x, big_t).sum()) / 2e-6
        assert analytic[i] == pytest.approx(numeric, rel=1e-6)


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="recency must satisfy"):
        fit_bgnbd([1], [5.0], [4.0])
    with pytest.raises(ValueError, match="recency must be 0"):
        fit_bgnbd([0], [1.0], [4.0])
    with pytest.raises(ValueError, match="whole number"):
        fit_bgnbd([1.5], [1.0], [4.0])
    with pytest.raises(ValueError, match="no customers"):
        fit_bgnbd([], [], [])
    with pytest.raises(ValueError, match="equal length"):
        fit_bgnbd([1, 2], [1.0], [4.0])
    with pytest.raises(ValueError, match="must be finite and > 0"):
        BgNbdParams(0.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="0 <= recency <= age"):
        probability_alive(LIFETIMES, 1, 5.0, 4.0)


def test_the_customer_sample_refit_escapes_a_degenerate_warm_start() -> None:
    """A refit started from the last parameters alone stayed in a no-dropout optimum found on
    a young population (the parameters below, seen in `engage backtest` on CDNOW); the
    sample fits from the default start too and keeps the better one."""
    from scoring.churn.customer_sample import CustomerSample
    from scoring.records import CustomerSummary

    now_day = 10_000
    sample = CustomerSample(5_000)
    for i, (x, t_x, big_t) in enumerate(load_cdnow_summary()):
        first = now_day - round(big_t * 7)
        sample.update(f"c{i}", CustomerSummary(first_day=first, last_day=first + round(t_x * 7),
                                               repeat_days=x))
    stuck = BgNbdParams(r=1337174.5, alpha=323213456.4, a=2.06e-9, b=0.0075)
    cold = sample.fit(now_day * MS_PER_DAY)
    refit = sample.fit(now_day * MS_PER_DAY, initial=PopulationParams(stuck))
    assert cold is not None and refit == cold
    bg = cold.bgnbd
    assert bg.a == pytest.approx(0.79, abs=0.05) and bg.b == pytest.approx(2.43, abs=0.2)
    rows = list(sample.rows.values())
    xs = [x for _, _, x in rows]
    t_x = [float(last - first) if x else 0.0 for first, last, x in rows]
    age = [max(now_day - first, t) for (first, _, _), t in zip(rows, t_x, strict=True)]
    warm_only = fit_bgnbd(xs, t_x, age, initial=stuck)
    assert warm_only.log_likelihood < fit_bgnbd(xs, t_x, age).log_likelihood - 1.0
