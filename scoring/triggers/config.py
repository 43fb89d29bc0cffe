"""Configuration of the triggers section (`[triggers]` in the rules file)."""

from __future__ import annotations

import msgspec

TRIGGER_TYPES: tuple[str, ...] = (
    "reengagement_nudge",
    "vip_promotion",
    "tier_change",
    "milestone",
    "streak",
    "onboarding_stalled",
    "ambassador_candidate",
    "win_back",
)


class _Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    cooldown_days: float = 0.0
    holdout_share: float = 0.0
    expires_hours: float = 72.0


class NudgeRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    churn_probability_above: float = 0.7
    silence_ratio_above: float = 3.0
    min_active_days: int = 3


class VipRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tier: str = "vip"


class TierChangeRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class Badge(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    event_type: str
    count: int = 1


class MilestoneRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    badges: tuple[Badge, ...] = ()


class StreakRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    lengths: tuple[int, ...] = (3, 7, 14, 30)


class OnboardingRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    after_days: float = 3.0
    required_types: tuple[str, ...] = ("post", "follow")


class AmbassadorRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    top_share: float = 0.01
    min_advocacy: float = 2.0


class WinBackRule(_Rule, frozen=True, forbid_unknown_fields=True, kw_only=True):
    min_silence_days: float = 14.0


class TriggersConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Trigger rules, caps and holdouts."""

    enabled: bool = True
    daily_cap: int = 3
    holdout_salt: str = "engage-holdout-v1"
    reengagement_nudge: NudgeRule = msgspec.field(default_factory=NudgeRule)
    vip_promotion: VipRule = msgspec.field(default_factory=VipRule)
    tier_change: TierChangeRule = msgspec.field(default_factory=TierChangeRule)
    milestone: MilestoneRule = msgspec.field(default_factory=MilestoneRule)
    streak: StreakRule = msgspec.field(default_factory=StreakRule)
    onboarding_stalled: OnboardingRule = msgspec.field(default_factory=OnboardingRule)
    ambassador_candidate: AmbassadorRule = msgspec.field(default_factory=AmbassadorRule)
    win_back: WinBackRule = msgspec.field(default_factory=WinBackRule)

    def rule(self, trigger_type: str) -> _Rule:
        rule: _Rule = getattr(self, trigger_type)
        return rule


def check_triggers_config(
    c: TriggersConfig, *, tier_names: list[str], event_types: set[str]
) -> None:
    from scoring.config import ConfigError

    if c.daily_cap < 0:
        raise ConfigError("triggers.daily_cap", "must not be negative")
    for t in TRIGGER_TYPES:
        rule = c.rule(t)
        if not 0.0 <= rule.holdout_share <= 1.0:
            raise ConfigError(f"triggers.{t}.holdout_share", "must be between 0 and 1")
        if rule.cooldown_days < 0:
            raise ConfigError(f"triggers.{t}.cooldown_days", "must not be negative")
        if rule.expires_hours <= 0:
            raise ConfigError(f"triggers.{t}.expires_hours", "must be greater than 0")
    if c.vip_promotion.tier not in tier_names:
        raise ConfigError("triggers.vip_promotion.tier", f"not a tier; tiers are {tier_names}")
    for i, badge in enumerate(c.milestone.badges):
        if badge.event_type not in event_types:
            raise ConfigError(
                f"triggers.milestone.badges[{i}].event_type",
                f"unknown event type {badge.event_type!r}",
            )
        if badge.count < 1:
            raise ConfigError(f"triggers.milestone.badges[{i}].count", "must be at least 1")
    if len(c.milestone.badges) > 62:
        raise ConfigError("triggers.milestone.badges", "at most 62 badges")
    for i, n in enumerate(c.streak.lengths):
        if n < 2 or n > 63:
            raise ConfigError(f"triggers.streak.lengths[{i}]", "must be between 2 and 63 days")
    for i, t in enumerate(c.onboarding_stalled.required_types):
        if t not in event_types:
            raise ConfigError(
                f"triggers.onboarding_stalled.required_types[{i}]", f"unknown event type {t!r}"
            )
    if not 0 < c.ambassador_candidate.top_share < 1:
        raise ConfigError("triggers.ambassador_candidate.top_share", "must be between 0 and 1")
    p = c.reengagement_nudge.churn_probability_above
    if not 0 <= p <= 1:
        raise ConfigError(
            "triggers.reengagement_nudge.churn_probability_above", "must be in [0, 1]"
        )
