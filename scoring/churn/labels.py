"""Observation points and delayed churn labels, resolved in event time.

Definitions (docs/models.md):
- An *observation point* is taken at the user's daily refresh sweep (at most one per user per
  UTC day), so the moments a model learns from are the moments it is asked about: active
  users a few hours after their last event, silent users days into their silence.
- It resolves **not churned (0)** when the user has a counted event at a time t with
  observed_at < t <= observed_at + horizon (activity exactly at the horizon is a return).
- It resolves **churned (1)** when the partition's watermark passes observed_at + horizon
  with no such event (or, equivalently, when the next event comes after the horizon).
- Features are not stored: between an observation and its resolution no event has changed
  the user's state (a later event resolves it; an earlier one arriving late discards it), so
  they are recomputed from the state at the observation time, exactly. A silent user has at
  most horizon_days + 1 open points.
- A user labelled churned gets no new observation until they return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scoring.churn.config import ChurnConfig
from scoring.churn.state import ChurnState
from scoring.features import FEATURE_NAMES
from scoring.records import ChurnExample
from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms

FeaturesAt = Callable[[int], list[float]]


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

    def _example(
        self, user_id: str, obs_ms: int, label: int, resolved_ms: int, features_at: FeaturesAt
    ) -> ChurnExample:
        return ChurnExample(
            user_id=user_id,
            observed_at=format_rfc3339_ms(obs_ms),
            resolved_at=format_rfc3339_ms(resolved_ms),
            label=label,
            features={
                n: round(v, 6) for n, v in zip(FEATURE_NAMES, features_at(obs_ms), strict=True)
            },
        )

    def on_activity(
        self, cs: ChurnState, user_id: str, event_ms: int, features_at: FeaturesAt
    ) -> list[ChurnExample]:
        """A counted event at `event_ms`; call *before* the event changes the state."""
        if not cs.obs:
            cs.churned_ms = 0
            return []
        examples: list[ChurnExample] = []
        for obs_ms in cs.obs:
            if event_ms <= obs_ms:
                # an event from before the observation, arriving late: not a return, but it
                # changes the state the point's features are recomputed from. The point is
                # discarded rather than trained on features the model was never asked about.
                continue
            deadline = obs_ms + self.horizon_ms
            if event_ms <= deadline:
                examples.append(self._example(user_id, obs_ms, 0, event_ms, features_at))
            else:
                examples.append(self._example(user_id, obs_ms, 1, deadline, features_at))
        cs.obs = []  # every open point is resolved or discarded by an event
        cs.examples += len(examples)
        cs.churned_ms = 0  # active again (the engine read the flag before calling)
        return examples

    def on_watermark(
        self, cs: ChurnState, user_id: str, watermark_ms: int, features_at: FeaturesAt
    ) -> list[ChurnExample]:
        """Resolve points whose horizon the watermark passed; open today's point if due."""
        examples: list[ChurnExample] = []
        kept = []
        for obs_ms in cs.obs:
            deadline = obs_ms + self.horizon_ms
            if watermark_ms > deadline:
                examples.append(self._example(user_id, obs_ms, 1, deadline, features_at))
                cs.churned_ms = deadline
            else:
                kept.append(obs_ms)
        cs.obs = kept
        cs.examples += len(examples)
        day = watermark_ms // MS_PER_DAY
        if not cs.churned_ms and day > cs.last_obs_day:
            cs.obs.append(watermark_ms)
            cs.last_obs_day = day
        return examples

    def next_due_ms(self, cs: ChurnState) -> int | None:
        return min(cs.obs) + self.horizon_ms + 1 if cs.obs else None
