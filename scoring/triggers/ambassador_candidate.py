"""`ambassador_candidate`: the user's advocacy (shares, referrals...) is in the top
`top_share` of the partition's users and above `min_advocacy`; at most once a month."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from scoring.config import DIMENSIONS
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
ADVOCACY_SKETCH = "advocacy"  # the partition's sketch of advocacy on each new active day


class AmbassadorConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    top_share: float = 0.01
    min_advocacy: float = 2.0


@register
class AmbassadorCandidate(TriggerRule):
    trigger_type = "ambassador_candidate"
    code = 6
    Config: ClassVar[type[RuleConfig]] = AmbassadorConfig
    priority = 60
    fires_on = "event of an advocacy type"
    doc = "advocacy in the top `top_share` of the partition's users and ≥ `min_advocacy`"

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, AmbassadorConfig)
        self.c = config
        self.rank = 1.0 - config.top_share
        self.advocacy_types = {
            t for t, spec in engage.event_types.items() if spec.weights.get("advocacy", 0) > 0
        }

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, AmbassadorConfig)
        if not 0 < config.top_share < 1:
            raise ConfigError("triggers.ambassador_candidate.top_share", "must be between 0 and 1")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        assert ctx.event is not None
        advocacy = ctx.state.dims[ADVOCACY]
        if ctx.new_active_day:
            ctx.shared.sketch(ADVOCACY_SKETCH).add(advocacy)
        if ctx.event.type not in self.advocacy_types:
            return
        cut = ctx.shared.sketch(ADVOCACY_SKETCH).quantile(self.rank)
        if cut is None or advocacy < max(self.c.min_advocacy, cut):
            return
        month = datetime.fromtimestamp(ctx.now_ms / 1000, tz=UTC).strftime("%Y-%m")
        out.append(Candidate(self.trigger_type, month, "ambassador_candidate.top_advocacy",
                             {"advocacy": rounded(advocacy), "top_share_cut": rounded(cut),
                              "min_advocacy": self.c.min_advocacy}))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        crowd = tuple(Step(t0 + i * 1000, "share", user=f"crowd-{i}") for i in range(100))
        fires = ContractCase((*crowd, Step(t0 + 3_600_000, "referral")), fires=True)
        near = ContractCase((*crowd, Step(t0 + 3_600_000, "share")), fires=False)
        return fires, near
