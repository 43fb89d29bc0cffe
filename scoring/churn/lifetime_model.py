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
# (a horizon after their observation). The previous default served the prior alone beyond
# them (`support`); on a single cohort such as CDNOW that withheld every correction at every
# cut-off, so the default no longer gates (features are still clipped to their learned range).
TIME_SUPPORT = ("log_recency_days", "log_age_days")
# The population models' other outputs are near-collinear with the prior's churn log-odds: as
# corrections they only rescale it, and a rescaling learned on the young customers of the
# first months (whose parameters were fitted on little data) miscalibrates it later. They stay
# for other models.
PRIOR_ECHOES = (
    "bgnbd_log_expected", "bgnbd_logit_alive", "bgnbd_logit_return", "mbgnbd_logit_alive",
)
BGNBD_PRIOR_ECHOES = ("bgnbd_log_expected", "bgnbd_logit_alive", "mbgnbd_logit_return",
                      "mbgnbd_logit_alive")


def lifetime_offset_logreg(
    support: tuple[str, ...] = (),
    ignore: tuple[str, ...] = PRIOR_ECHOES,
    prior: str = "mbgnbd_logit_return",
) -> Any:
    """MBG/NBD's churn log-odds as the prior, corrections learned online: the recommended one.

    `prior="bgnbd_logit_return"` with `ignore=BGNBD_PRIOR_ECHOES` and `support=TIME_SUPPORT`
    is the previous default (layout 2)."""
    return OffsetLogisticRegression(
        offset=prior, offset_sign=-1.0, learning_rate=0.05, l2=1e-3,
        support=support, ignore=ignore,
    )


def lifetime_logreg() -> Any:
    """Standard-scaled river logistic regression over every lifetime feature (no prior)."""
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.02), l2=1e-4
    )


class BgNbdChurn(base.Classifier):
    """BG/NBD (or MBG/NBD) alone: P(no return within the horizon) from the features' log-odds
    of a return, with the population parameters the trainer refits; labels are not learned."""

    def __init__(self, feature: str = "bgnbd_logit_return") -> None:
        self.feature = feature

    def predict_proba_one(
        self, x: dict[Hashable, Any], **kwargs: Any
    ) -> dict[bool | str | int, float]:
        p = sigmoid(-float(x.get(self.feature, 0.0)))
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict[Hashable, Any], y: bool | str | int, w: float = 1.0) -> None:
        """Nothing to learn: the parameters come from the customers' summaries."""


def bgnbd_churn() -> Any:
    """BG/NBD's own churn probability (refitted from customer summaries, learns no labels)."""
    return BgNbdChurn()


def mbgnbd_churn() -> Any:
    """MBG/NBD's own churn probability (refitted from customer summaries, learns no labels)."""
    return BgNbdChurn("mbgnbd_logit_return")
