"""`streak`: the user's run of consecutive active days reached a configured length."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from scoring.errors import ConfigError
from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, RuleConfig, Step, TriggerRule
from scoring.windows import current_streak

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext


class StreakConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    lengths: tuple[int, ...] = (3, 7, 14, 30)


@register
class Streak(TriggerRule):
    trigger_type = "streak"
    code = 4
    Config: ClassVar[type[RuleConfig]] = StreakConfig
    priority = 40
    fires_on = "event, on a new active day"
    doc = "consecutive active days reached one of `lengths`; once per length per streak"

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, StreakConfig)
        self.lengths = sorted(config.lengths)

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, StreakConfig)
        for i, n in enumerate(config.lengths):
            if n < 2 or n > 63:
                raise ConfigError(f"triggers.streak.lengths[{i}]", "must be between 2 and 63 days")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        if not ctx.new_active_day or not self.lengths:
            return
        state, ts = ctx.state, ctx.triggers
        length = current_streak(state, state.anchor_day)
        reached = [n for n in self.lengths if n <= length]
        if not reached:
            return
        start = state.anchor_day - length + 1
        if ts.streak_start == start and ts.streak_served >= reached[-1]:
            return
        ts.streak_start, ts.streak_served = start, reached[-1]
        out.append(Candidate(self.trigger_type, f"{reached[-1]}@{start}",
                             f"streak.{reached[-1]}_days",
                             {"current_streak": length, "length": reached[-1]},
                             {"streak_days": reached[-1]}))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        days = tuple(Step(t0 + d * MS_PER_DAY, "view") for d in range(3))
        gap = (days[0], days[1], Step(t0 + 3 * MS_PER_DAY, "view"))  # a day missed
        return ContractCase(days, fires=True), ContractCase(gap, fires=False)
