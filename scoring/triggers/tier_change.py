"""`tier_change`: the user's loyalty tier moved, up on an event or down after the grace
period on a sweep; once per move."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, TriggerRule, rounded, varied_engagement

if TYPE_CHECKING:
    from scoring.hooks import TriggerContext


def tier_features(ctx: TriggerContext, thresholds: Sequence[float]) -> dict[str, float]:
    """What a tier rule saw: the score and the thresholds of both tiers."""
    return {"engagement_score": rounded(ctx.view.engagement_score),
            "from_threshold": thresholds[ctx.previous_tier],
            "to_threshold": thresholds[ctx.tier]}


@register
class TierChange(TriggerRule):
    trigger_type = "tier_change"
    code = 2
    priority = 10
    fires_on = "event or sweep"
    doc = "the tier moved: promotions on an event, demotions after the grace period"

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        self._moved(ctx, out)

    def on_sweep(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        self._moved(ctx, out)

    def _moved(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        new, old = ctx.tier, ctx.previous_tier
        if new == old:
            return
        names = ctx.tier_names
        direction = "promotion" if new > old else "demotion"
        # promotions happen on an event (its time is stable under reprocessing); demotions on
        # a sweep, whose exact time depends on the watermark, so they are named by UTC day
        when = ctx.now_ms if new > old else f"day{ctx.now_ms // MS_PER_DAY}"
        thresholds = [lv.min_score for lv in self.engage.tiers.levels]
        out.append(Candidate(self.trigger_type, f"{names[old]}->{names[new]}@{when}",
                             f"tier_change.{direction}", tier_features(ctx, thresholds),
                             {"from_tier": names[old], "to_tier": names[new],
                              "direction": direction}))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        uncapped = {"triggers": {"daily_cap": 100}}
        return (ContractCase(varied_engagement(4), fires=True, rules=uncapped),  # to silver
                ContractCase(varied_engagement(3), fires=False, rules=uncapped))
