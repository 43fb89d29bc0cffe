"""Observation points and delayed churn labels, resolved in event time.

Definitions (docs/models.md):
- An *observation point* is the user's first counted event of a UTC day, at most one open
  per user; it stores the feature vector at that moment.
- It resolves **not churned (0)** when the user is active on a *later* day at a time
  <= observed_at + horizon (activity exactly at the horizon counts as a return).
- It resolves **churned (1)** when the partition's watermark passes observed_at + horizon
  with no such activity (or, equivalently, when the next activity comes after the horizon).
Each observation yields exactly one example; a churned user gets no new observation until
they return, so a long-gone user does not keep producing positive labels.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import Any

from scoring.churn.config import ChurnConfig
from scoring.churn.state import ChurnState
from scoring.features import FEATURE_NAMES
from scoring.timeutil import format_rfc3339_ms
from scoring.windows import MS_PER_DAY


def pack(features: Sequence[float]) -> bytes:
    return array("f", features).tobytes()


def unpack(blob: bytes) -> list[float]:
    values = array("f")
    values.frombytes(blob)
    return [round(v, 5) for v in values]


class ChurnLabels:
    """The engine's ChurnHooks: labels from state, probabilities from a predictor callable."""

    def __init__(
        self,
        config: ChurnConfig,
        predict: Callable[[Sequence[float]], float | None] = lambda _features: None,
        model_tag: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.horizon_ms = int(config.horizon_days * MS_PER_DAY)
        self._predict = predict
        self.model_tag = model_tag  # "name@version" of the model behind predict()

    def predict(self, features: Sequence[float]) -> float | None:
        return self._predict(features)

    def _resolve(
        self, cs: ChurnState, user_id: str, label: int, resolved_ms: int
    ) -> dict[str, Any]:
        example = {
            "schema": "churn-example/v1",
            "user_id": user_id,
            "observed_at": format_rfc3339_ms(cs.obs_ms),
            "resolved_at": format_rfc3339_ms(resolved_ms),
            "label": label,
            "features": dict(zip(FEATURE_NAMES, unpack(cs.obs_features), strict=True)),
        }
        cs.obs_ms = 0
        cs.obs_features = b""
        cs.examples += 1
        if label:
            cs.churned_ms = resolved_ms
        return example

    def on_activity(
        self,
        cs: ChurnState,
        user_id: str,
        event_ms: int,
        features: Callable[[], list[float]],
    ) -> list[dict[str, Any]]:
        examples: list[dict[str, Any]] = []
        day = event_ms // MS_PER_DAY
        if cs.obs_ms and day > cs.obs_ms // MS_PER_DAY:
            deadline = cs.obs_ms + self.horizon_ms
            if event_ms <= deadline:
                examples.append(self._resolve(cs, user_id, 0, event_ms))
            else:
                examples.append(self._resolve(cs, user_id, 1, deadline))
        cs.churned_ms = 0  # active again (the engine read the flag before calling)
        if not cs.obs_ms and day > cs.last_obs_day:
            cs.obs_ms = event_ms
            cs.obs_features = pack(features())
            cs.last_obs_day = day
        return examples

    def on_watermark(self, cs: ChurnState, user_id: str, watermark_ms: int) -> list[dict[str, Any]]:
        if cs.obs_ms and watermark_ms > cs.obs_ms + self.horizon_ms:
            return [self._resolve(cs, user_id, 1, cs.obs_ms + self.horizon_ms)]
        return []

    def next_due_ms(self, cs: ChurnState) -> int | None:
        return cs.obs_ms + self.horizon_ms + 1 if cs.obs_ms else None
