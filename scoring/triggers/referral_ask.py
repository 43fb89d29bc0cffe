"""`referral_ask`: a satisfied user just gave a good rating: the moment to ask for a
referral. Never within `quiet_after_bad_rating_days` of a bad rating (admission's guard,
scoring.triggers.admission), at most once a month."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from scoring.errors import ConfigError
from scoring.satisfaction import SatisfactionModel
from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import register
from scoring.triggers.rule import (
    CONTRACT_T0,
    Candidate,
    ContractCase,
    RuleConfig,
    Step,
    TriggerRule,
    rounded,
)

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext


class ReferralAskConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    cooldown_days: float = 30.0
    holdout_share: float = 0.10
    expires_hours: float = 72.0
    quiet_after_bad_rating_days: float = 30.0
    min_satisfaction: float = 80.0  # 0-100 (scoring.satisfaction)
    min_ratings: int = 2  # one rating is not a pattern


@register
class ReferralAsk(TriggerRule):
    trigger_type = "referral_ask"
    code = 10
    Config: ClassVar[type[RuleConfig]] = ReferralAskConfig
    priority = 65
    fires_on = "event with a rating"
    doc = ("a good rating from a user whose satisfaction ≥ `min_satisfaction`; "
           "not within `quiet_after_bad_rating_days` of a bad rating")

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, ReferralAskConfig)
        self.c = config
        self.satisfaction = SatisfactionModel(engage)

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, ReferralAskConfig)
        if not 0 <= config.min_satisfaction <= 100:
            raise ConfigError("triggers.referral_ask.min_satisfaction",
                              "must be between 0 and 100")
        if config.min_ratings < 1:
            raise ConfigError("triggers.referral_ask.min_ratings", "must be at least 1")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        event = ctx.event
        assert event is not None
        props = event.properties
        rating = props.rating if props is not None else None
        if rating is None or not self.satisfaction.rates(event.type, rating):
            return
        if not self.satisfaction.is_good(rating) or ctx.state.ratings < self.c.min_ratings:
            return
        satisfaction = ctx.view.satisfaction
        if satisfaction is None or satisfaction < self.c.min_satisfaction:
            return
        month = datetime.fromtimestamp(ctx.now_ms / 1000, tz=UTC).strftime("%Y-%m")
        out.append(Candidate(self.trigger_type, month, "referral_ask.satisfied_rater",
                             {"satisfaction": rounded(satisfaction), "rating": rating,
                              "ratings": ctx.state.ratings,
                              "min_satisfaction": self.c.min_satisfaction}))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        def review(day: int, rating: int) -> Step:
            return Step(CONTRACT_T0 + day * MS_PER_DAY, "review", properties={"rating": rating})

        eight = {"triggers": {"referral_ask": {"min_ratings": 8}}}
        happy = tuple(review(day, 5) for day in range(8))
        # as happy, but the seventh review is bad: satisfaction is still high (~91) at the
        # eighth, and the guard holds the ask back for 30 days
        upset = (*happy[:6], review(6, 2), review(7, 5))
        return (ContractCase(happy, fires=True, rules=eight),
                ContractCase(upset, fires=False, rules=eight))
