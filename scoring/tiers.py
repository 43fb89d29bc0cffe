"""Loyalty tiers with hysteresis: promote at once, demote only after a grace period.

A user in tier T is demoted only when the composite score has stayed below
`min_score(T) - demotion_margin` for `demotion_grace_days`; dipping under the threshold
without crossing the margin, or recovering within the grace period, keeps the tier.
"""

from __future__ import annotations

from scoring.config import EngageConfig
from scoring.state import UserState


class TierPolicy:
    """Tiers by rank (0 = the lowest) while computing; stored by name in the user's state
    (`""` for the lowest), so a tier added to the list never shifts anyone's tier."""

    def __init__(self, config: EngageConfig) -> None:
        self.names = [lv.name for lv in config.tiers.levels]
        self.stored = ["", *self.names[1:]]
        self.ranks = {name: i for i, name in enumerate(self.names)}
        self.ranks[""] = 0
        self.thresholds = [lv.min_score for lv in config.tiers.levels]
        self.margin = config.tiers.demotion_margin
        self.grace_ms = int(config.tiers.demotion_grace_days * 86_400_000)

    def rank(self, state: UserState) -> int:
        """The user's tier rank; a tier no longer configured counts as the lowest."""
        return self.ranks.get(state.tier, 0)

    def name(self, state: UserState) -> str:
        return self.names[self.rank(state)]

    def plain_tier(self, score: float) -> int:
        tier = 0
        for i, threshold in enumerate(self.thresholds):
            if score >= threshold:
                tier = i
        return tier

    def update(self, state: UserState, score: float, now_ms: int) -> int:
        """Move `state.tier` for a score seen at `now_ms`; returns the previous tier's rank."""
        previous = self.rank(state)
        target = self.plain_tier(score)
        if target >= previous:
            state.tier = self.stored[target]
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
            state.tier = self.stored[keep]
            state.below_since_ms = 0
        return previous

    def next_due_ms(self, state: UserState) -> int | None:
        """When a pending demotion's grace period ends."""
        return state.below_since_ms + self.grace_ms if state.below_since_ms else None
