"""MBG/NBD: BG/NBD with a dropout chance at the first purchase too.

Batislam, Denizel & Filiztekin (2007), "Empirical validation and comparison of models for
customer base analysis", International Journal of Research in Marketing 24(3). The same story
as BG/NBD (scoring.churn.bgnbd) — purchases at rate lambda ~ Gamma(r, alpha) while alive, death
with probability p ~ Beta(a, b) — except that a customer may also die right after the *first*
purchase. BG/NBD cannot: there a one-time buyer is alive with probability 1, ranked by age
alone, so a one-time buyer of a year ago looks livelier than a repeat buyer silent for half a
year. On purchase histories most customers buy once (56 % of CDNOW), which makes this the
comparison that matters most for a ranking of who churns.

Likelihood (x repeat purchases, t_x time of the last, T age; all in one unit):

    L = Gamma(r + x) alpha^r / Gamma(r) * B(a, b + x + 1) / B(a, b)
        * [(alpha + T)^-(r + x) + a / (b + x) * (alpha + t_x)^-(r + x)]

P(alive) = 1 / (1 + a / (b + x) ((alpha + T)/(alpha + t_x))^(r + x)) for every x, and, as in
BG/NBD, P(no purchase in (T, T + h]) = 1 - P(alive) (1 - ((alpha + T)/(alpha + T + h))^(r + x)).
The fit merges identical summaries and maximises over log-parameters by L-BFGS-B with the
analytic gradient, as fit_bgnbd does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy import special

from scoring.churn.bgnbd import (
    FloatArray,
    GammaBetaParams,
    PopulationFit,
    family_gradient,
    family_log_likelihood,
    fit_population,
    no_purchase_given_alive,
)

LOGIT_CLIP = 12.0


@dataclass(frozen=True, slots=True)
class MbgNbdParams(GammaBetaParams):
    """MBG/NBD's population parameters."""

    MODEL: ClassVar[str] = "MBG/NBD"


MbgNbdFit = PopulationFit[MbgNbdParams]


def _dead_odds(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """D = log[(a / (b + x)) ((alpha + T)/(alpha + t_x))^(r + x)]: P(alive) = 1 / (1 + e^D)."""
    d: FloatArray = (
        math.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x))
    )
    return d


def _log_likelihood(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    return family_log_likelihood(1.0, _dead_odds, r, alpha, a, b, x, t_x, big_t)


def _gradient(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    return family_gradient(1.0, _dead_odds, r, alpha, a, b, x, t_x, big_t)


def fit_mbgnbd(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    age: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    initial: MbgNbdParams | None = None,
) -> MbgNbdFit:
    """Maximum-likelihood (r, alpha, a, b) from per-customer summaries (as fit_bgnbd)."""
    return fit_population(MbgNbdParams, _log_likelihood, _gradient, frequency, recency, age,
                          weights=weights, initial=initial)


# ---- per-customer closed forms (scalars, constant time) ------------------------------------


def _against(p: MbgNbdParams, frequency: float, recency: float, age: float) -> float:
    if frequency < 0 or recency < 0 or recency > age * (1 + 1e-12):
        raise ValueError(
            f"need frequency >= 0 and 0 <= recency <= age, got {frequency}, {recency}, {age}"
        )
    return (
        math.log(p.a)
        - math.log(p.b + frequency)
        + (p.r + frequency) * (math.log(p.alpha + age) - math.log(p.alpha + recency))
    )


def probability_alive(p: MbgNbdParams, frequency: float, recency: float, age: float) -> float:
    """P(alive at T | x, t_x, T); below 1 for one-time buyers too."""
    return float(special.expit(-_against(p, frequency, recency, age)))


def probability_no_purchase(
    p: MbgNbdParams, horizon: float, frequency: float, recency: float, age: float
) -> float:
    """P(no purchase in (T, T + horizon] | x, t_x, T): MBG/NBD's own churn probability."""
    return no_purchase_given_alive(p, horizon, frequency, age,
                                   probability_alive(p, frequency, recency, age))


def mbgnbd_features(
    p: MbgNbdParams, horizon: float, x: int, t_x: float, big_t: float
) -> tuple[float, float]:
    """(log-odds of a return within the horizon, logit P(alive)), both clipped to
    +-LOGIT_CLIP: the hot-path form of probability_no_purchase and probability_alive."""
    r_x = p.r + x
    log_alpha_t = math.log(p.alpha + big_t)
    against = math.log(p.a) - math.log(p.b + x) + r_x * (log_alpha_t - math.log(p.alpha + t_x))
    alive = 1.0 / (1.0 + math.exp(against)) if against < 700 else 0.0
    silent_if_alive = r_x * (log_alpha_t - math.log(p.alpha + big_t + horizon))
    p_silent = 1.0 - alive * -math.expm1(silent_if_alive)
    p_silent = min(max(p_silent, 1e-12), 1.0 - 1e-12)
    return (
        max(-LOGIT_CLIP, min(LOGIT_CLIP, math.log((1.0 - p_silent) / p_silent))),
        max(-LOGIT_CLIP, min(LOGIT_CLIP, -against)),
    )
