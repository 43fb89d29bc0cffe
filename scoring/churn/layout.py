"""The churn models' input: feature names in order, and the layout version artifacts carry.

A model learns from feature dicts keyed by these names; an artifact records the names and the
layout it was trained on, and a worker refuses (before unpickling) a model trained on another
layout: its weights would be read against features that mean something else.

Layout 1 (engage 0.1): the 19 activity features of scoring.features (7/28-day windows,
streaks, dimensions). Layout 2 (issue #11): the lifetime features over return events
(scoring.churn.lifetime), with BG/NBD's log-odds, expected returns and P(alive). Layout 3
(issue #11, second round): layout 2 and MBG/NBD's log-odds of a return and P(alive)
(scoring.churn.mbgnbd), the default model's prior.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring.churn.lifetime import LIFETIME_FEATURE_NAMES

FEATURE_LAYOUT = 3
FEATURE_NAMES: tuple[str, ...] = LIFETIME_FEATURE_NAMES


def layout_problem(meta: Mapping[str, Any]) -> str | None:
    """Why an artifact's model cannot take this release's features (None: it can)."""
    layout = meta.get("layout", 1)
    names = meta.get("features")
    if layout != FEATURE_LAYOUT:
        return (
            f"trained on feature layout {layout}, this release computes layout "
            f"{FEATURE_LAYOUT} ({len(FEATURE_NAMES)} lifetime features); retrain or swap "
            "the model (engage model swap NAME)"
        )
    if names is not None and tuple(names) != FEATURE_NAMES:
        return f"trained on features {names}, this release computes {list(FEATURE_NAMES)}"
    return None
