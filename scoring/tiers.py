"""Loyalty tiers with hysteresis: promote at once, demote only after a grace period.

A user in tier T is demoted only when the composite score has stayed below
`min_score(T) - demotion_margin` for `demotion_grace_days`; dipping under the threshold
without crossing the margin, or recovering within the grace period, keeps the tier.
"""

from __future__ import annotations

from scoring.config import EngageConfig
from scoring.state import UserState


class TierPolicy:
    def __init__(self, config: EngageConfig) -> None:
        self.names = [lv.name for lv in config.tiers.levels]
        self.thresholds = [lv.min_score for lv in config.tiers.levels]
        self.margin = config.tiers.demotion_margin
        self.grace_ms = int(config.tiers.demotion_grace_days * 86_400_000)

    def plain_tier(self, score: float) -> int:
        tier = 0
        for i, threshold in enumerate(self.thresholds):
            if score >= threshold:
                tier = i
        return tier

    def update(self, state: UserState, score: float, now_ms: int) -> int:
        """Move `state.tier` for a score seen at `now_ms`; returns the previous tier."""
        previous = state.tier
        target = self.plain_tier(score)
        if target >= previous:
            state.tier = target
            state.below_since_ms = 0
            return previous
        if score >= self.thresholds[previous] - self.margin:
            state.below_since_ms = 0  # under the threshold but within the margin: hold
            return previous
        if state.below_since_ms == 0 or state.below_since_ms > now_ms:
            state.below_since_ms = now_ms
        if now_ms - state.below_since_ms >= self.grace_ms:
            keep = target
            for i in range(previous - 1, target, -1):
                if score >= self.thresholds[i] - self.margin:
                    keep = i
                    break
            state.tier = keep
            state.below_since_ms = 0
        return previous

    def next_due_ms(self, state: UserState) -> int | None:
        """When a pending demotion's grace period ends."""
        return state.below_since_ms + self.grace_ms if state.below_since_ms else None
