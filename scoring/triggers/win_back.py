"""`win_back`: a user labelled churned, or silent for `min_silence_days`, comes back."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, RuleConfig, Step, TriggerRule, rounded

if TYPE_CHECKING:
    from scoring.hooks import TriggerContext


class WinBackConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    min_silence_days: float = 14.0


@register
class WinBack(TriggerRule):
    trigger_type = "win_back"
    code = 7
    Config: ClassVar[type[RuleConfig]] = WinBackConfig
    priority = 50
    doc = "a user labelled churned, or silent for `min_silence_days`, returns"

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        assert isinstance(self.config, WinBackConfig)
        silence_days = ctx.gap_before_ms / MS_PER_DAY
        if ctx.was_churned or silence_days >= self.config.min_silence_days:
            out.append(Candidate(
                self.trigger_type, f"return@{ctx.now_ms}",
                "win_back.churned" if ctx.was_churned else "win_back.silence",
                {"silence_days": rounded(silence_days), "was_labelled_churned": ctx.was_churned,
                 "min_silence_days": self.config.min_silence_days},
            ))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        fires = ContractCase((Step(t0, "view"), Step(t0 + 15 * MS_PER_DAY, "view")), fires=True)
        near = ContractCase((Step(t0, "view"), Step(t0 + 13 * MS_PER_DAY, "view")), fires=False)
        return fires, near
