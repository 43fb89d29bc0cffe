"""`onboarding_stalled`: a new user has not done the first actions that matter (e.g. a
post and a follow) within `after_days` of their first event; judged once."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from scoring.errors import ConfigError
from scoring.state import type_code
from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, RuleConfig, Step, TriggerRule, rounded

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext
    from scoring.state import UserState


class OnboardingConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    after_days: float = 3.0
    required_types: tuple[str, ...] = ("post", "follow")


@register
class OnboardingStalled(TriggerRule):
    trigger_type = "onboarding_stalled"
    code = 5
    Config: ClassVar[type[RuleConfig]] = OnboardingConfig
    priority = 80
    fires_on = "sweep"
    doc = "none of `required_types` within `after_days` of the first event; judged once"

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, OnboardingConfig)
        self.c = config
        self.codes = {type_code(t) for t in config.required_types}

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, OnboardingConfig)
        for i, t in enumerate(config.required_types):
            if t not in engage.event_types:
                raise ConfigError(f"triggers.onboarding_stalled.required_types[{i}]",
                                  f"unknown event type {t!r}")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        assert ctx.event is not None
        if type_code(ctx.event.type) in self.codes:
            ctx.triggers.onboarding_done = True

    def on_sweep(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        state = ctx.state
        age_ms = ctx.now_ms - state.first_ms
        if not ctx.triggers.onboarding_done and age_ms >= self.c.after_days * MS_PER_DAY:
            ctx.triggers.onboarding_done = True  # judged once: fire now or never
            out.append(Candidate(
                self.trigger_type, "onboarding", "onboarding_stalled.no_first_actions",
                {"days_since_first_event": rounded(age_ms / MS_PER_DAY),
                 "required_types": list(self.c.required_types)},
            ))

    def next_due_ms(self, state: UserState) -> int | None:
        if state.triggers.onboarding_done:
            return None
        return state.first_ms + int(self.c.after_days * MS_PER_DAY)

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        fires = ContractCase((Step(t0, "view"), Step(t0 + 4 * MS_PER_DAY)), fires=True)
        near = ContractCase(
            (Step(t0, "view"), Step(t0 + 60_000, "post"), Step(t0 + 4 * MS_PER_DAY)),
            fires=False,
        )
        return fires, near
