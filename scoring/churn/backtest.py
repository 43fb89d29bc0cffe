"""A churn backtest at one cut-off: the population's labels and the two classic baselines.

The label of a user in the population at the cut-off is 1 (churned) when no return follows in
(cut-off, cut-off + horizon]. The baselines, scored on the same users: days since the last
return (a ranking, no probability), and BG/NBD fitted by maximum likelihood on every
population member's (x, t_x, T) at the cut-off, ranked by its own P(no purchase within the
horizon); and MBG/NBD likewise (the default model's prior without its learned corrections,
so that a table shows what the labels add). The shell (streams/backtest.py) replays the
history and supplies the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.churn.bgnbd import (
    BgNbdParams,
    P,
    PopulationFit,
    fit_bgnbd,
    probability_no_purchase,
)
from scoring.churn.customer_sample import MIN_REPEATERS_TO_FIT
from scoring.churn.evaluation import scorecard
from scoring.churn.lifetime import Summary
from scoring.churn.mbgnbd import fit_mbgnbd
from scoring.churn.mbgnbd import probability_no_purchase as mbg_no_purchase
from scoring.churn.paired import paired_auc


@dataclass(frozen=True, slots=True)
class Scored:
    """One population member at the cut-off."""

    user: str
    model: float  # the engine's churn_probability
    silence_days: float  # since the last return
    summary: Summary  # (x, t_x, T) in days


def churn_labels(users: Sequence[str], returned: Collection[str]) -> list[int]:
    return [0 if u in returned else 1 for u in users]


def bgnbd_baseline(
    summaries: Sequence[Summary], horizon_days: float
) -> tuple[BgNbdParams, list[float]] | None:
    """Parameters fitted on these summaries and each one's P(no purchase within the
    horizon); None with fewer than MIN_REPEATERS_TO_FIT repeat customers (no stable fit)."""
    return _population_baseline(summaries, horizon_days, fit_bgnbd, probability_no_purchase)


def mbgnbd_baseline(summaries: Sequence[Summary], horizon_days: float) -> list[float] | None:
    """MBG/NBD fitted on these summaries: each one's P(no purchase within the horizon)."""
    fitted = _population_baseline(summaries, horizon_days, fit_mbgnbd, mbg_no_purchase)
    return fitted[1] if fitted is not None else None


def _population_baseline(
    summaries: Sequence[Summary],
    horizon_days: float,
    fit: Callable[[list[float], list[float], list[float]], PopulationFit[P]],
    no_purchase: Callable[[P, float, float, float, float], float],
) -> tuple[P, list[float]] | None:
    if sum(1 for s in summaries if s.frequency > 0) < MIN_REPEATERS_TO_FIT:
        return None
    params = fit(
        [s.frequency for s in summaries], [s.recency for s in summaries],
        [s.age for s in summaries],
    ).params
    return params, [
        no_purchase(params, horizon_days, s.frequency, s.recency, s.age) for s in summaries
    ]


def compare(rows: Sequence[Scored], labels: Sequence[int], horizon_days: float,
            model_name: str, with_mbgnbd: bool = True) -> dict[str, Any]:
    """Side by side: the engine's model, recency only, BG/NBD and MBG/NBD (the default
    model's prior, alone), on the same users."""
    if not rows:
        raise ValueError("nobody is in the churn population at the cut-off")
    churned = sum(labels)
    if churned in (0, len(labels)):
        raise ValueError(
            f"all {len(labels)} users {'churned' if churned else 'returned'} within the "
            "horizon: a ranking needs both outcomes"
        )
    model_scores = [r.model for r in rows]
    ranked: dict[str, list[float]] = {"recency_only": [r.silence_days for r in rows]}
    scorers: dict[str, Any] = {
        model_name: scorecard(model_scores, labels, probabilistic=True),
        "recency_only": scorecard(ranked["recency_only"], labels, probabilistic=False),
    }
    out: dict[str, Any] = {
        "users": len(rows),
        "churned": churned,
        "churn_rate": churned / len(rows),
        "scorers": scorers,
        "bgnbd_params": None,
    }
    baseline = bgnbd_baseline([r.summary for r in rows], horizon_days)
    if baseline is not None:
        params, probabilities = baseline
        scorers["bgnbd"] = scorecard(probabilities, labels, probabilistic=True)
        ranked["bgnbd"] = probabilities
        out["bgnbd_params"] = {
            "r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b, "unit": "days"
        }
    if with_mbgnbd:
        mbg = mbgnbd_baseline([r.summary for r in rows], horizon_days)
        if mbg is not None:
            scorers["mbgnbd"] = scorecard(mbg, labels, probabilistic=True)
            ranked["mbgnbd"] = mbg
    # the model's ROC AUC minus each baseline's on the same users, with DeLong's 95 % interval
    # (left out with fewer than two users of a label)
    enough = min(churned, len(labels) - churned) >= 2
    out["paired"] = {
        name: _paired(model_scores, scores, labels) for name, scores in ranked.items() if enough
    }
    return out


def _paired(a: Sequence[float], b: Sequence[float], labels: Sequence[int]) -> dict[str, float]:
    d = paired_auc(a, b, labels)
    return {"delta": d.delta, "se": d.se, "low": d.low, "high": d.high, "p_value": d.p_value}
