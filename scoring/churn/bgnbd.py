"""BG/NBD: the beta-geometric / negative-binomial model of repeat buying.

Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
Pareto/NBD model", Marketing Science 24(2). While alive, a customer buys as a Poisson process
of rate lambda ~ Gamma(r, alpha); after each purchase they die with probability p ~ Beta(a, b).
A customer's history is summarised by three numbers, all in one time unit (days or weeks):

- `frequency` x: repeat purchases (purchase *periods* after the first, e.g. distinct days - 1);
- `recency` t_x: time from the first to the last purchase (0 when x = 0);
- `age` T: time from the first purchase to the moment of evaluation.

`alpha` is in that time unit (fitted in days it is 7 x the weekly figure; r, a and b do not
change). Per-user quantities are closed forms, computed in constant time and in log space,
so they serve as features on the hot path; the fit is a batch job over all users' summaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class GammaBetaParams:
    """Purchase rate ~ Gamma(r, alpha), dropout ~ Beta(a, b): the parameters BG/NBD and
    MBG/NBD share (each model has its own subclass, so one is never taken for the other)."""

    r: float
    alpha: float
    a: float
    b: float

    MODEL: ClassVar[str] = "BG/NBD"

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"{self.MODEL} parameter {name} must be finite and > 0, got {value}")


@dataclass(frozen=True, slots=True)
class BgNbdParams(GammaBetaParams):
    """BG/NBD's population parameters."""


P = TypeVar("P", bound=GammaBetaParams)


@dataclass(frozen=True, slots=True)
class PopulationFit(Generic[P]):
    """The maximum-likelihood parameters and how the fit went."""

    params: P
    log_likelihood: float  # total, with every constant term (comparable with the paper's)
    customers: float  # sum of weights
    converged: bool
    iterations: int


BgNbdFit = PopulationFit[BgNbdParams]


def _as_arrays(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    big_t = np.asarray(age, dtype=np.float64)
    if not (x.shape == t_x.shape == big_t.shape) or x.ndim != 1:
        raise ValueError("frequency, recency and age must be 1-D sequences of equal length")
    if x.size == 0:
        raise ValueError("no customers to fit")
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(big_t).all()):
        raise ValueError("frequency, recency and age must be finite")
    if (x < 0).any() or (x != np.floor(x)).any():
        raise ValueError("frequency must be a whole number >= 0")
    if (t_x < 0).any() or (t_x > big_t * (1 + 1e-12)).any():
        raise ValueError("recency must satisfy 0 <= recency <= age")
    if ((x == 0) & (t_x != 0)).any():
        raise ValueError("recency must be 0 for customers without repeat purchases")
    return x, t_x, big_t


# (r, alpha, a, b, x, t_x, T) -> per customer: log-likelihood (n,), or its gradient (4, n)
PerCustomer = Callable[
    [float, float, float, float, FloatArray, FloatArray, FloatArray], FloatArray
]


def _log_alive_odds_inverse(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """D = log[(a / (b + x - 1)) ((alpha + T) / (alpha + t_x))^(r + x)] for x > 0, -inf for x = 0.

    P(alive) = 1 / (1 + e^D), and the likelihood's second branch is e^D times its first.
    """
    repeat = x > 0
    d = np.full(x.shape, -np.inf)
    xr = x[repeat]
    d[repeat] = (
        math.log(a)
        - np.log(b + xr - 1.0)
        + (r + xr) * (np.log(alpha + big_t[repeat]) - np.log(alpha + t_x[repeat]))
    )
    return d


def log_likelihood_per_customer(
    params: BgNbdParams, frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike
) -> FloatArray:
    """Log of each customer's likelihood L(r, alpha, a, b | x, t_x, T) (paper, eq. 6)."""
    x, t_x, big_t = _as_arrays(frequency, recency, age)
    return _log_likelihood(params.r, params.alpha, params.a, params.b, x, t_x, big_t)


def family_log_likelihood(
    shift: float, dead_odds: PerCustomer,
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """Per-customer log-likelihood of the BG/NBD family: the NBD purchase terms, times
    1 + e^D for the chance of having dropped out (`dead_odds` gives D). `shift` is 0 for
    BG/NBD (drop-out only after a repeat purchase), 1 for MBG/NBD (after any purchase)."""
    first = (
        special.gammaln(r + x)
        - math.lgamma(r)
        + r * math.log(alpha)
        + special.betaln(a, b + x + shift)
        - special.betaln(a, b)
        - (r + x) * np.log(alpha + big_t)
    )
    result: FloatArray = first + np.logaddexp(0.0, dead_odds(r, alpha, a, b, x, t_x, big_t))
    return result


def _log_likelihood(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    return family_log_likelihood(0.0, _log_alive_odds_inverse, r, alpha, a, b, x, t_x, big_t)


def family_gradient(
    shift: float, dead_odds: PerCustomer,
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """d(family_log_likelihood)/d(r, alpha, a, b) per customer, shape (4, n)."""
    s = special.expit(dead_odds(r, alpha, a, b, x, t_x, big_t))  # BG/NBD: 0 when x = 0
    log_ratio = np.log(alpha + big_t) - np.log(alpha + t_x)
    psi = special.digamma
    d_r = psi(r + x) - psi(r) + math.log(alpha) - np.log(alpha + big_t) + s * log_ratio
    d_alpha = (
        r / alpha - (r + x) / (alpha + big_t)
        + s * (r + x) * (1.0 / (alpha + big_t) - 1.0 / (alpha + t_x))
    )
    d_a = psi(a + b) - psi(a + b + x + shift) + s / a
    # s / (b + x - 1 + shift); 0 where s is (BG/NBD's x = 0, where b + x - 1 may be 0)
    dead_term = np.divide(s, b + x + (shift - 1.0), out=np.zeros_like(x), where=s > 0)
    d_b = psi(b + x + shift) - psi(a + b + x + shift) - psi(b) + psi(a + b) - dead_term
    return np.vstack([d_r, d_alpha, d_a, d_b])


def _gradient(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    return family_gradient(0.0, _log_alive_odds_inverse, r, alpha, a, b, x, t_x, big_t)


def _distinct(
    x: FloatArray, t_x: FloatArray, big_t: FloatArray, w: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Customers with the same summary, merged into one row with the summed weight; rows in
    ascending (x, t_x, T) order, as np.unique(axis=0) gives them (4 fits per refit do this:
    lexsort is ~10x faster than unique's sort of structured rows, with the same result)."""
    order = np.lexsort((big_t, t_x, x))
    xs, ts, bs = x[order], t_x[order], big_t[order]
    first = np.empty(len(xs), dtype=bool)  # the first row of each distinct summary
    first[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    first[1:] |= ts[1:] != ts[:-1]
    first[1:] |= bs[1:] != bs[:-1]
    inverse = np.empty(len(xs), dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    weights = np.asarray(
        np.bincount(inverse, weights=w, minlength=int(first.sum())), dtype=np.float64
    )
    return xs[first], ts[first], bs[first], weights


def fit_bgnbd(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    age: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    penalizer: float = 0.0,
    initial: BgNbdParams | None = None,
) -> BgNbdFit:
    """Maximum-likelihood (r, alpha, a, b) from per-customer summaries.

    `weights` counts customers sharing a summary (histograms of summaries fit the same;
    identical summaries are merged anyway). `penalizer` adds `penalizer * sum(log(param)^2)`
    to the mean negative log-likelihood, which keeps a fit on a few young customers from
    running off to extreme a, b (0: plain MLE). Optimised over log-parameters by L-BFGS-B
    with the analytic gradient.
    """
    return fit_population(BgNbdParams, _log_likelihood, _gradient, frequency, recency, age,
                          weights=weights, penalizer=penalizer, initial=initial)


def fit_population(
    kind: type[P],
    log_likelihood: PerCustomer,
    gradient: PerCustomer,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    age: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    penalizer: float = 0.0,
    initial: P | None = None,
) -> PopulationFit[P]:
    """The fit fit_bgnbd describes, for any model of the (r, alpha, a, b) family given its
    per-customer log-likelihood and gradient (BG/NBD, MBG/NBD)."""
    x, t_x, big_t = _as_arrays(frequency, recency, age)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != x.shape or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("weights must be finite, >= 0, one per customer, with a positive sum")
    if penalizer < 0:
        raise ValueError("penalizer must be >= 0")
    x, t_x, big_t, w = _distinct(x, t_x, big_t, w)
    total = float(w.sum())
    if initial is None:
        initial = kind(1.0, max(float(np.average(big_t, weights=w)), 1e-6), 1.0, 1.0)
    start = np.log([initial.r, initial.alpha, initial.a, initial.b])

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        r, alpha, a, b = np.exp(log_params)
        ll = log_likelihood(r, alpha, a, b, x, t_x, big_t)
        value = -float(np.dot(w, ll)) / total
        grad = -(gradient(r, alpha, a, b, x, t_x, big_t) @ w) / total * np.exp(log_params)
        if penalizer:
            value += penalizer * float(np.dot(log_params, log_params))
            grad = grad + 2.0 * penalizer * log_params
        if not (math.isfinite(value) and np.isfinite(grad).all()):
            return math.inf, np.zeros(4)
        return value, grad

    from scipy import optimize  # ~0.15 s to import: only where a fit runs, not at CLI start

    bounds = [(-20.0, 20.0)] * 4
    best = optimize.minimize(
        objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    ll_total = float(np.dot(w, log_likelihood(r, alpha, a, b, x, t_x, big_t)))
    return PopulationFit(kind(r, alpha, a, b), ll_total, total, bool(best.success),
                         int(best.nit))


# ---- per-customer closed forms (scalars, constant time) ------------------------------------


def _check_customer(frequency: float, recency: float, age: float) -> None:
    if frequency < 0 or recency < 0 or recency > age * (1 + 1e-12):
        raise ValueError(
            f"need frequency >= 0 and 0 <= recency <= age, got {frequency}, {recency}, {age}"
        )


def _log_alive_odds_against(p: BgNbdParams, frequency: float, recency: float, age: float) -> float:
    if frequency == 0:
        return -math.inf
    return (
        math.log(p.a)
        - math.log(p.b + frequency - 1.0)
        + (p.r + frequency) * (math.log(p.alpha + age) - math.log(p.alpha + recency))
    )


def probability_alive(p: BgNbdParams, frequency: float, recency: float, age: float) -> float:
    """P(alive at T | x, t_x, T) (paper, eq. 9; 1 for x = 0, as in the model)."""
    _check_customer(frequency, recency, age)
    return float(special.expit(-_log_alive_odds_against(p, frequency, recency, age)))


def logit_alive(p: BgNbdParams, frequency: float, recency: float, age: float) -> float:
    """log(P(alive) / (1 - P(alive))): the same quantity without saturation (inf for x = 0)."""
    _check_customer(frequency, recency, age)
    return -_log_alive_odds_against(p, frequency, recency, age)


def probability_no_purchase(
    p: BgNbdParams, horizon: float, frequency: float, recency: float, age: float
) -> float:
    """P(no purchase in (T, T + horizon] | x, t_x, T): BG/NBD's own churn probability.

    A customer alive at T can only die right after a purchase, so no purchase in the horizon
    means dead already, or alive with no Poisson arrival: given alive, lambda's posterior is
    Gamma(r + x, alpha + T), whence 1 - P(alive) (1 - ((alpha + T)/(alpha + T + h))^(r + x)).
    """
    return no_purchase_given_alive(p, horizon, frequency, age,
                                   probability_alive(p, frequency, recency, age))


def no_purchase_given_alive(
    p: GammaBetaParams, horizon: float, frequency: float, age: float, alive: float
) -> float:
    """1 - P(alive) (1 - ((alpha + T)/(alpha + T + h))^(r + x)): BG/NBD's and MBG/NBD's
    churn probability from their own P(alive) (the Poisson part is the same in both)."""
    if horizon < 0:
        raise ValueError("horizon must be >= 0")
    log_silent_if_alive = (p.r + frequency) * (
        math.log(p.alpha + age) - math.log(p.alpha + age + horizon)
    )
    return 1.0 - alive * -math.expm1(log_silent_if_alive)


def expected_purchases(
    p: BgNbdParams, horizon: float, frequency: float, recency: float, age: float
) -> float:
    """E[purchases in (T, T + horizon] | x, t_x, T] (paper, eq. 10).

    (a + b + x - 1)/(a - 1) [1 - u^(r+x) 2F1(r + x, b + x; a + b + x - 1; z)] P(alive), with
    u = (alpha + T)/(alpha + T + h) and z = h/(alpha + T + h) = 1 - u. The Gauss function is
    taken through Euler's transformation when that keeps it small (c - a - b < 0 makes the
    direct series grow like (1 - z)^(c - a - b), which the power u^(r + x) then cancels).
    """
    if horizon < 0:
        raise ValueError("horizon must be >= 0")
    if p.a == 1.0:
        raise ValueError("expected_purchases needs a != 1 (the closed form divides by a - 1)")
    alive = probability_alive(p, frequency, recency, age)
    if horizon == 0:
        return 0.0
    return expected_purchases_if_alive(p, horizon, frequency, age) * alive


def expected_purchases_if_alive(
    p: BgNbdParams, horizon: float, frequency: float, age: float
) -> float:
    """expected_purchases without its P(alive) factor (callers that have it already)."""
    h1, h2, c = p.r + frequency, p.b + frequency, p.a + p.b + frequency - 1.0
    log_u = math.log(p.alpha + age) - math.log(p.alpha + age + horizon)
    z = horizon / (p.alpha + age + horizon)
    excess = c - h1 - h2  # = a - 1 - r - x
    if excess < 0:
        # u^(r+x) 2F1(h1, h2; c; z) = u^(r+x) u^(c-h1-h2) 2F1(c-h1, c-h2; c; z) (Euler)
        term = math.exp((h1 + excess) * log_u) * float(special.hyp2f1(c - h1, c - h2, c, z))
    else:
        term = math.exp(h1 * log_u) * float(special.hyp2f1(h1, h2, c, z))
    return (p.a + p.b + frequency - 1.0) / (p.a - 1.0) * (1.0 - term)


def expected_purchases_new_customer(p: BgNbdParams, horizon: float) -> float:
    """E[X(t)]: purchases (after the first) by a customer aged t (paper, eq. 7)."""
    if horizon < 0:
        raise ValueError("horizon must be >= 0")
    if p.a == 1.0:
        raise ValueError("needs a != 1 (the closed form divides by a - 1)")
    z = horizon / (p.alpha + horizon)
    term = math.exp(p.r * math.log(p.alpha / (p.alpha + horizon))) * float(
        special.hyp2f1(p.r, p.b, p.a + p.b - 1.0, z)
    )
    return (p.a + p.b - 1.0) / (p.a - 1.0) * (1.0 - term)
