"""The seams between the scoring engine and its two plug-ins: churn and triggers.

The engine (scoring/engine.py) owns per-user state and features; the churn module
(scoring/churn/) and the trigger module (scoring/triggers/) plug in through these protocols so
each can be built and tested alone. All times are epoch milliseconds of *event time*.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# A flat, JSON-friendly feature vector, e.g. {"recency_days": 3.2, "activity": 11.5, ...}.
Features = Mapping[str, float]


class ChurnHooks(Protocol):
    """What the engine asks of the churn module."""

    def predict(self, features: Features) -> float | None:
        """Churn probability in [0, 1] from the champion model, None when no model is ready."""

    def on_activity(self, churn_state: Any, features: Features, event_ms: int) -> list[dict[str, Any]]:
        """A counted event at `event_ms`: resolve pending observations as *not churned* when
        within the horizon, record a new observation point (at most one per user per day).
        Mutates `churn_state` (a scoring.churn.state.ChurnState) and returns resolved
        examples (JSON-ready dicts, see churn.examples contract)."""

    def on_watermark(self, churn_state: Any, watermark_ms: int) -> list[dict[str, Any]]:
        """Resolve pending observations whose horizon the watermark has passed as *churned*."""

    def next_due_ms(self, churn_state: Any) -> int | None:
        """Earliest event time at which on_watermark would change something."""


class TriggerHooks(Protocol):
    """What the engine asks of the trigger module."""

    def evaluate(self, ctx: TriggerContext) -> list[dict[str, Any]]:
        """Triggers (JSON-ready dicts, trigger v1 contract) due for this user now. Mutates
        `ctx.trigger_state` (a scoring.triggers.state.TriggerState) to record episodes,
        cooldowns and caps."""

    def next_due_ms(self, trigger_state: Any, features: Features, now_ms: int) -> int | None:
        """Earliest event time at which a silence-driven trigger could fire, if any."""


class TriggerContext:
    """Everything a rule may look at, at one moment, for one user."""

    __slots__ = (
        "churn_probability",
        "event",
        "event_type",
        "features",
        "now_ms",
        "previous_tier",
        "score",
        "tier",
        "trigger_state",
        "user_id",
    )

    def __init__(
        self,
        *,
        user_id: str,
        now_ms: int,
        event_type: str | None,
        event: Any,
        features: Features,
        score: float,
        tier: str,
        previous_tier: str,
        churn_probability: float | None,
        trigger_state: Any,
    ) -> None:
        self.user_id = user_id
        self.now_ms = now_ms  # event time of the event, or the watermark on a sweep
        self.event_type = event_type  # None on a watermark sweep
        self.event = event  # scoring.events.Event or None on a sweep
        self.features = features
        self.score = score
        self.tier = tier
        self.previous_tier = previous_tier
        self.churn_probability = churn_probability
        self.trigger_state = trigger_state
