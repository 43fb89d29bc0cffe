"""`vip_promotion`: the user entered the configured top tier (or above) from below it."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from scoring.errors import ConfigError
from scoring.triggers.registry import register
from scoring.triggers.rule import (
    Candidate,
    ContractCase,
    RuleConfig,
    TriggerRule,
    varied_engagement,
)
from scoring.triggers.tier_change import tier_features

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext


class VipConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tier: str = "vip"


@register
class VipPromotion(TriggerRule):
    trigger_type = "vip_promotion"
    code = 1
    Config: ClassVar[type[RuleConfig]] = VipConfig
    priority = 20
    fires_on = "event or sweep"
    doc = "the user entered `tier` (or above) from below it"

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, VipConfig)
        names = [lv.name for lv in engage.tiers.levels]
        self.vip = names.index(config.tier)
        self.thresholds = [lv.min_score for lv in engage.tiers.levels]

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, VipConfig)
        names = [lv.name for lv in engage.tiers.levels]
        if config.tier not in names:
            raise ConfigError("triggers.vip_promotion.tier", f"not a tier; tiers are {names}")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        self._entered(ctx, out)

    def on_sweep(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        self._entered(ctx, out)

    def _entered(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        new, old = ctx.tier, ctx.previous_tier
        if new >= self.vip > old:
            names = ctx.tier_names
            out.append(Candidate(self.trigger_type, f"{names[new]}@{ctx.now_ms}",
                                 "vip_promotion.entered_top_tier",
                                 tier_features(ctx, self.thresholds),
                                 {"from_tier": names[old], "to_tier": names[new]}))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        uncapped = {"triggers": {"daily_cap": 100}}
        return (ContractCase(varied_engagement(25), fires=True, rules=uncapped),
                ContractCase(varied_engagement(24), fires=False, rules=uncapped))  # gold only
