"""`ambassador_candidate`: the user's advocacy (shares, referrals...) is in the top
`top_share` of the active population and above `min_advocacy`; at most once a month, and
not within `quiet_after_bad_rating_days` of a bad rating.

The percentile is read against the shared population reference (the same for every
partition, worker and replay: scoring.population_reference), so "top 1 %" means the top 1 %
of all users active in the last 28 days, not of one worker's users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from scoring.calibration import Calibration
from scoring.config import DIMENSIONS
from scoring.dimensions import DimensionModel
from scoring.errors import ConfigError
from scoring.triggers.registry import register
from scoring.triggers.rule import (
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

ADVOCACY = DIMENSIONS.index("advocacy")


class AmbassadorConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    top_share: float = 0.01
    min_advocacy: float = 2.0
    quiet_after_bad_rating_days: float = 14.0


@register
class AmbassadorCandidate(TriggerRule):
    trigger_type = "ambassador_candidate"
    code = 6
    Config: ClassVar[type[RuleConfig]] = AmbassadorConfig
    priority = 60
    fires_on = "event of an advocacy type"
    doc = "advocacy in the top `top_share` of active users and ≥ `min_advocacy`"

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, AmbassadorConfig)
        self.c = config
        self.rank = 1.0 - config.top_share
        self.advocacy_types = {
            t for t, spec in engage.event_types.items() if spec.weights.get("advocacy", 0) > 0
        }
        self.calibration = Calibration(engage, DimensionModel(engage))

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, AmbassadorConfig)
        if not 0 < config.top_share < 1:
            raise ConfigError("triggers.ambassador_candidate.top_share", "must be between 0 and 1")
        if config.enabled and not engage.scoring.population.enabled:
            raise ConfigError("triggers.ambassador_candidate.enabled",
                              "reads the population reference: scoring.population.enabled "
                              "must be true (or disable this rule)")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        assert ctx.event is not None
        if ctx.event.type not in self.advocacy_types:
            return
        advocacy = ctx.state.dims[ADVOCACY]
        percentile = ctx.percentile("advocacy")
        if percentile is None or percentile < self.rank or advocacy < self.c.min_advocacy:
            return
        ranked = ctx.shared.reference.ranked[ADVOCACY]
        cut_key = ranked.quantile_key(self.rank)
        cut = 0.0 if cut_key is None else self.calibration.value_at(cut_key, ADVOCACY, ctx.now_ms)
        month = datetime.fromtimestamp(ctx.now_ms / 1000, tz=UTC).strftime("%Y-%m")
        out.append(Candidate(self.trigger_type, month, "ambassador_candidate.top_advocacy",
                             {"advocacy": rounded(advocacy),
                              "advocacy_percentile": rounded(100.0 * percentile),
                              "top_share_cut": rounded(cut),
                              "min_advocacy": self.c.min_advocacy}))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        # a crowd with one share each on day 0; read against it on day 1 (the reference of
        # a day is the population at the end of the day before)
        t0 = 1_767_225_600_000
        crowd = tuple(Step(t0 + i * 1000, "share", user=f"crowd-{i}") for i in range(100))
        day1 = t0 + 86_400_000 + 2 * 3_600_000
        fires = ContractCase((*crowd, Step(day1, "referral")), fires=True)
        near = ContractCase((*crowd, Step(day1, "share")), fires=False)
        return fires, near
