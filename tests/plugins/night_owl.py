"""A trigger type that exists only in the tests: `night_owl`, a user active between midnight
and 04:00 UTC, once per night. Named in a rules file (`triggers.plugins =
["tests.plugins.night_owl"]`), it fires through replay and the worker, with no edit outside
this file and its schema beside it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from scoring.errors import ConfigError
from scoring.timeutil import MS_PER_DAY, MS_PER_HOUR
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, RuleConfig, Step, TriggerRule

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext


class NightOwlConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    until_hour: int = 4


@register
class NightOwl(TriggerRule):
    trigger_type = "night_owl"
    code = 100
    Config: ClassVar[type[RuleConfig]] = NightOwlConfig
    doc = "an event between midnight and `until_hour` UTC; once per night"

    @classmethod
    def schema_path(cls) -> Path:
        return Path(__file__).with_name("trigger.night_owl.v1.json")

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, NightOwlConfig)
        if not 0 < config.until_hour <= 24:
            raise ConfigError("triggers.night_owl.until_hour", "must be between 1 and 24")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        assert isinstance(self.config, NightOwlConfig)
        hour = ctx.now_ms % MS_PER_DAY // MS_PER_HOUR
        if hour < self.config.until_hour:
            night = ctx.now_ms // MS_PER_DAY
            out.append(Candidate(self.trigger_type, f"night@{night}", "night_owl.late_event",
                                 {"hour_utc": hour}))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000  # midnight
        fires = ContractCase((Step(t0 + 10 * MS_PER_HOUR, "view"),
                              Step(t0 + MS_PER_DAY + 2 * MS_PER_HOUR, "view")), fires=True)
        near = ContractCase((Step(t0 + 4 * MS_PER_HOUR, "view"),), fires=False)
        return fires, near
