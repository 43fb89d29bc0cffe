"""Churn models over the lifetime features (scoring.churn.lifetime.LIFETIME_FEATURE_NAMES).

Zero-argument factories, like the registry's built-ins, so the engine can register them once
it computes lifetime features. Learn with `learn_one(x, y, w=weight)` to pass each
observation point's weight (scoring.churn.schedule) to the regression.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from river import base

from scoring.churn.calibration import sigmoid
from scoring.churn.offset_model import OffsetLogisticRegression

# Features that grow with calendar time: labels of long silences and old customers arrive last
# (a horizon after their observation), so corrections are not extrapolated beyond them.
TIME_SUPPORT = ("log_recency_days", "log_age_days")
# BG/NBD's other outputs are near-collinear with its churn log-odds: as corrections they only
# rescale the prior, and a rescaling learned on the young customers of the first months (whose
# parameters were fitted on little data) miscalibrates it later. They stay for other models.
PRIOR_ECHOES = ("bgnbd_log_expected", "bgnbd_logit_alive")


def lifetime_offset_logreg(
    support: tuple[str, ...] = TIME_SUPPORT, ignore: tuple[str, ...] = PRIOR_ECHOES
) -> Any:
    """BG/NBD's churn log-odds as the prior, corrections learned online: the recommended one."""
    return OffsetLogisticRegression(
        offset="bgnbd_logit_return", offset_sign=-1.0, learning_rate=0.05, l2=1e-3,
        support=support, ignore=ignore,
    )


def lifetime_logreg() -> Any:
    """Standard-scaled river logistic regression over every lifetime feature (no prior)."""
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.02), l2=1e-4
    )


class BgNbdChurn(base.Classifier):
    """BG/NBD alone: P(no return within the horizon) from the features' BG/NBD log-odds, with
    the population parameters the trainer refits; labels are not learned."""

    def predict_proba_one(
        self, x: dict[Hashable, Any], **kwargs: Any
    ) -> dict[bool | str | int, float]:
        p = sigmoid(-float(x.get("bgnbd_logit_return", 0.0)))
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict[Hashable, Any], y: bool | str | int, w: float = 1.0) -> None:
        """Nothing to learn: the parameters come from the customers' summaries."""


def bgnbd_churn() -> Any:
    """BG/NBD's own churn probability (refitted from customer summaries, learns no labels)."""
    return BgNbdChurn()
