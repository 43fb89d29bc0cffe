"""The seams between the scoring engine and its two plug-ins: churn and triggers.

The engine (scoring/engine.py) owns per-user state and features; the churn module
(scoring/churn/) and the trigger module (scoring/triggers/) plug in through these protocols,
so each is built and tested alone and either can be switched off. Times are epoch ms of
*event time*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from scoring.config import DIMENSIONS

if TYPE_CHECKING:
    from scoring.churn.state import ChurnState
    from scoring.events import Event
    from scoring.extensions import Signal
    from scoring.features import UserView
    from scoring.partition_state import PartitionShared
    from scoring.records import ChurnExample, Suppression, Trigger
    from scoring.state import UserState
    from scoring.triggers.state import TriggerState


class ChurnHooks(Protocol):
    """What the engine asks of the churn module. The churn module keeps everything it needs
    in `UserState.churn` (the user's lifetime summary and observation schedule), so each
    call is O(1) and nothing is recomputed from the engine's windows."""

    def predict(self, churn_state: ChurnState, now_ms: int) -> float | None:
        """Churn probability in [0, 1] at `now_ms` from the champion model; None before any
        model, or for a user outside the churn population."""

    def model_tag(self) -> str | None:
        """`name@version` of the model behind predict(), None before any."""

    def on_activity(self, state: UserState, user_id: str, event: Event) -> list[ChurnExample]:
        """Every counted event (the first one included), *before* it changes `state`: update
        the lifetime summary in `state.churn` and, for a return, resolve the observation
        points it follows. Returns resolved examples."""

    def on_watermark(
        self, churn_state: ChurnState, user_id: str, watermark_ms: int
    ) -> list[ChurnExample]:
        """A sweep: resolve the points whose horizon the watermark passed as churned."""

    def next_due_ms(self, churn_state: ChurnState) -> int | None:
        """Earliest watermark at which on_watermark would change something."""


class TriggerHooks(Protocol):
    """What the engine asks of the trigger module."""

    def evaluate(self, ctx: TriggerContext) -> list[Trigger]:
        """Triggers due for this user now; records episodes, cooldowns and caps in
        `ctx.state.triggers`."""

    def next_due_ms(self, state: UserState) -> int | None:
        """Earliest event time at which a silence-driven trigger could fire, if any."""


class TriggerContext:
    """Everything a rule may look at, at one moment, for one user."""

    __slots__ = (
        "_probability",
        "_probability_fn",
        "_view",
        "_view_fn",
        "event",
        "gap_before_ms",
        "new_active_day",
        "now_ms",
        "percentiles",
        "previous_tier",
        "score",
        "shared",
        "signals",
        "signals_only",
        "state",
        "suppressed",
        "tier",
        "tier_lines",
        "tier_names",
        "user_id",
        "was_churned",
    )

    def __init__(
        self,
        *,
        user_id: str,
        now_ms: int,
        event: Event | None,
        state: UserState,
        view: Callable[[UserState, int], UserView],
        previous_tier: int,
        tier: int,
        tier_names: Sequence[str],
        shared: PartitionShared,
        score: float = 0.0,
        tier_lines: Sequence[float] = (),
        percentiles: Sequence[float | None] = (),
        churn_probability: Callable[[UserState, int], float | None] | None = None,
        was_churned: bool = False,
        gap_before_ms: int = 0,
        new_active_day: bool = False,
        signals: list[Signal] | None = None,
        signals_only: bool = False,
    ) -> None:
        self.user_id = user_id
        self.now_ms = now_ms  # the event's time, or the watermark on a sweep
        self.event = event  # None on a watermark sweep
        self.state = state
        # (state, now) -> the view, built on first use: like `churn_probability`, given the
        # state rather than a closure made for every moment
        self._view_fn = view
        self._view: UserView | None = None
        self.previous_tier = previous_tier  # tier rank before this moment (0: the lowest)
        self.tier = tier  # tier rank now
        self.tier_names = tier_names
        self.shared = shared  # the partition's population state and reference
        self.score = score  # the engagement score the tiers judged (calibrated or absolute)
        self.tier_lines = tier_lines  # each tier's score line for that score
        self.percentiles = percentiles  # per dimension, 0..1, against the shared reference
        # (state, now) -> the probability: given the state, not a closure over this context
        # (a reference cycle per event that only the cyclic garbage collector would free)
        self._probability_fn = churn_probability
        self._probability: tuple[float | None] | None = None
        self.was_churned = was_churned  # labelled churned before this event
        self.gap_before_ms = gap_before_ms  # silence that this event ended (0 for a first event)
        self.new_active_day = new_active_day
        self.signals = signals or []  # what extensions decided at this moment (referrals...)
        self.signals_only = signals_only  # a message: only `on_signals` rules are asked
        self.suppressed: list[Suppression] = []  # what budgets held back (for triggers.audit)

    @property
    def view(self) -> UserView:
        if self._view is None:
            self._view = self._view_fn(self.state, self.now_ms)
        return self._view

    def percentile(self, dimension: str) -> float | None:
        """The user's percentile (0..1) of a dimension among active users; None before the
        population reference exists."""
        index = DIMENSIONS.index(dimension)
        return self.percentiles[index] if index < len(self.percentiles) else None

    @property
    def churn_probability(self) -> float | None:
        """The champion model's churn probability at this moment (computed on first use)."""
        if self._probability is None:
            predict = self._probability_fn
            self._probability = (None if predict is None else predict(self.state, self.now_ms),)
        return self._probability[0]

    @property
    def triggers(self) -> TriggerState:
        return self.state.triggers
