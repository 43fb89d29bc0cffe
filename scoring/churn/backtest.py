"""A churn backtest at one cut-off: the population's labels and the two classic baselines.

The label of a user in the population at the cut-off is 1 (churned) when no return follows in
(cut-off, cut-off + horizon]. The baselines, scored on the same users: days since the last
return (a ranking, no probability), and BG/NBD fitted by maximum likelihood on every
population member's (x, t_x, T) at the cut-off, ranked by its own P(no purchase within the
horizon). The shell (streams/backtest.py) replays the history and supplies the rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.churn.bgnbd import BgNbdParams, fit_bgnbd, probability_no_purchase
from scoring.churn.customer_sample import MIN_REPEATERS_TO_FIT
from scoring.churn.evaluation import scorecard
from scoring.churn.lifetime import Summary


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
    if sum(1 for s in summaries if s.frequency > 0) < MIN_REPEATERS_TO_FIT:
        return None
    params = fit_bgnbd(
        [s.frequency for s in summaries], [s.recency for s in summaries],
        [s.age for s in summaries],
    ).params
    return params, [
        probability_no_purchase(params, horizon_days, s.frequency, s.recency, s.age)
        for s in summaries
    ]


def compare(rows: Sequence[Scored], labels: Sequence[int], horizon_days: float,
            model_name: str) -> dict[str, Any]:
    """Side by side: the engine's model, recency only and BG/NBD, on the same users."""
    if not rows:
        raise ValueError("nobody is in the churn population at the cut-off")
    churned = sum(labels)
    if churned in (0, len(labels)):
        raise ValueError(
            f"all {len(labels)} users {'churned' if churned else 'returned'} within the "
            "horizon: a ranking needs both outcomes"
        )
    scorers: dict[str, Any] = {
        model_name: scorecard([r.model for r in rows], labels, probabilistic=True),
        "recency_only": scorecard([r.silence_days for r in rows], labels, probabilistic=False),
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
        out["bgnbd_params"] = {
            "r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b, "unit": "days"
        }
    return out
