"""`reengagement_nudge`: a user with some history goes quiet for longer than usual, or the
churn model says they are likely gone; once per silent period."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from scoring.errors import ConfigError
from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import register
from scoring.triggers.rule import (
    Candidate,
    ContractCase,
    RuleConfig,
    Step,
    TriggerRule,
    cooldown_ends_ms,
    rounded,
)
from scoring.triggers.state import episode_hash
from scoring.windows import typical_gap_days

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext
    from scoring.state import UserState

DAY = MS_PER_DAY


class NudgeConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    churn_probability_above: float = 0.7
    silence_ratio_above: float = 3.0
    min_active_days: int = 3


@register
class ReengagementNudge(TriggerRule):
    trigger_type = "reengagement_nudge"
    code = 0
    Config: ClassVar[type[RuleConfig]] = NudgeConfig
    priority = 70
    fires_on = "sweep"
    doc = ("silence longer than `silence_ratio_above` times the user's typical gap, or churn "
           "probability above `churn_probability_above`; once per silent period")

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, NudgeConfig)
        self.c = config
        self.default_gap_days = engage.scoring.default_gap_days
        self.daily_cap = engage.triggers.daily_cap

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, NudgeConfig)
        if not 0 <= config.churn_probability_above <= 1:
            raise ConfigError(
                "triggers.reengagement_nudge.churn_probability_above", "must be in [0, 1]"
            )

    def on_sweep(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        state, c = ctx.state, self.c
        if state.active_days < c.min_active_days:
            return
        view = ctx.view
        p = ctx.churn_probability
        by_prob = p is not None and p > c.churn_probability_above
        by_silence = view.silence_ratio > c.silence_ratio_above
        if (by_prob or by_silence) and view.recency_days >= 1.0:
            out.append(Candidate(
                self.trigger_type, f"silence@{state.last_ms}",
                "reengagement_nudge.churn_probability" if by_prob
                else "reengagement_nudge.silence_ratio",
                {"churn_probability": None if p is None else rounded(p),
                 "churn_probability_above": c.churn_probability_above,
                 "silence_ratio": rounded(view.silence_ratio),
                 "silence_ratio_above": c.silence_ratio_above,
                 "recency_days": rounded(view.recency_days),
                 "typical_gap_days": rounded(view.typical_gap_days)},
            ))

    def next_due_ms(self, state: UserState) -> int | None:
        c, ts = self.c, state.triggers
        if state.active_days < c.min_active_days:
            return None
        served = ts.episodes.get(self.code)  # hashed only when there is one to compare
        if served is not None and served == episode_hash(f"silence@{state.last_ms}"):
            return None
        gap = max(typical_gap_days(state, self.default_gap_days), 1.0)
        when = state.last_ms + int(c.silence_ratio_above * gap * DAY) + 1
        cooldown_ends = cooldown_ends_ms(ts, self.code, c.cooldown_days)
        if cooldown_ends is not None:
            when = max(when, cooldown_ends)
        if ts.day_count >= self.daily_cap and when // DAY == ts.day:
            when = (ts.day + 1) * DAY  # capped today: look again tomorrow
        return when

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        daily = tuple(Step(t0 + d * DAY, "session_start") for d in range(4))
        fires = ContractCase((*daily, Step(t0 + 8 * DAY)), fires=True)  # silence 5 d > 3 x 1 d
        near = ContractCase((*daily, Step(t0 + 5 * DAY)), fires=False)  # 2 d: within rhythm
        return fires, near
