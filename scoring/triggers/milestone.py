"""`milestone`: a configured badge is earned (the Nth event of a type); once per badge."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import msgspec

from scoring.errors import ConfigError
from scoring.state import name_hash, type_code
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, RuleConfig, Step, TriggerRule

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext
    from scoring.triggers.state import TriggerState


class Badge(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    event_type: str
    count: int = 1


class MilestoneConfig(RuleConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    badges: tuple[Badge, ...] = ()


def _earn(badge: int) -> Callable[[TriggerState], None]:
    def earn(ts: TriggerState) -> None:
        if badge not in ts.badges:
            ts.badges.append(badge)

    return earn


@register
class Milestone(TriggerRule):
    trigger_type = "milestone"
    code = 3
    Config: ClassVar[type[RuleConfig]] = MilestoneConfig
    priority = 30
    doc = "a configured badge is earned (the `count`-th event of `event_type`)"

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        super().__init__(config, engage)
        assert isinstance(config, MilestoneConfig)
        self.by_code: dict[int, list[tuple[int, int, str]]] = {}
        for badge in config.badges:
            self.by_code.setdefault(type_code(badge.event_type), []).append(
                (name_hash(badge.name), badge.count, badge.name)
            )

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        assert isinstance(config, MilestoneConfig)
        for i, badge in enumerate(config.badges):
            if badge.event_type not in engage.event_types:
                raise ConfigError(f"triggers.milestone.badges[{i}].event_type",
                                  f"unknown event type {badge.event_type!r}")
            if badge.count < 1:
                raise ConfigError(f"triggers.milestone.badges[{i}].count", "must be at least 1")
        names = [b.name for b in config.badges]
        if len(set(names)) != len(names):
            raise ConfigError("triggers.milestone.badges", "badge names must be unique")

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        assert ctx.event is not None
        code = type_code(ctx.event.type)
        earned = ctx.triggers.badges
        for badge, count, name in self.by_code.get(code, ()):
            if badge not in earned and ctx.state.lifetime.get(code, 0) >= count:
                # recorded when admitted: one held back by the daily cap comes with the
                # user's next event of this type
                out.append(Candidate(self.trigger_type, name, f"milestone.{name}",
                                     {"event_type": ctx.event.type, "count": count},
                                     {"badge": name}, on_admit=_earn(badge)))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        rules = {"triggers": {"milestone": {"badges": [
            {"name": "third_review", "event_type": "review", "count": 3}]}}}
        reviews = tuple(Step(t0 + i * 60_000, "review") for i in range(3))
        return (ContractCase(reviews, fires=True, rules=rules),
                ContractCase(reviews[:2], fires=False, rules=rules))
