"""What a trigger rule is: one class in one file, registered under a fixed code.

A rule names its type (the topic `triggers.<type>` and the `type` field), a fixed `code`
(what users' state keys its history by: never reused, never a list position), its config
struct (the `[triggers.<type>]` section, with defaults), and its logic: `on_event` for a
counted event, `on_sweep` for a silent user whose due time the watermark passed, and
`next_due_ms` when a rule needs a sweep at a time of its own. Each proposes `Candidate`s;
admission (episodes, cooldowns, the daily cap, holdouts) is written once, in
scoring.triggers.admission, for every rule.

`contract_cases` gives one moment that fires and one near miss, which the contract test
(tests/unit/test_trigger_contract.py) runs for every registered rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from scoring.timeutil import MS_PER_DAY

if TYPE_CHECKING:
    from scoring.config import EngageConfig
    from scoring.hooks import TriggerContext
    from scoring.state import UserState
    from scoring.triggers.state import TriggerState

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


class RuleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What every rule's section has; a rule's own config subclasses it."""

    enabled: bool = True
    cooldown_days: float = 0.0
    holdout_share: float = 0.0
    expires_hours: float = 72.0
    quiet_after_bad_rating_days: float = 0.0  # not within this long after a bad rating
    daily_budget: int = 0  # treatment triggers a UTC day, cluster-wide, at most (0: no limit)


class Candidate:
    """A trigger a rule wants to fire; `on_admit` records in the user's state what only an
    emitted trigger may record (e.g. an earned badge)."""

    __slots__ = ("details", "episode", "features", "on_admit", "rule", "type")

    def __init__(
        self, type_: str, episode: str, rule: str, features: dict[str, Any],
        details: dict[str, Any] | None = None,
        on_admit: Callable[[TriggerState], None] | None = None,
    ) -> None:
        self.type = type_
        self.episode = episode
        self.rule = rule
        self.features = features
        self.details = details or {}
        self.on_admit = on_admit


@dataclass(frozen=True)
class Step:
    """One moment of a contract case: an event of `event_type` at `at_ms`, or (no type) a
    sweep of the user at that watermark."""

    at_ms: int
    event_type: str | None = None
    user: str = "contract-user"
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContractCase:
    """Steps after which the rule's type fires exactly once at the last step (`fires`), or
    never (a near miss); `rules` overrides the rules file for the case."""

    steps: tuple[Step, ...]
    fires: bool
    rules: dict[str, Any] = field(default_factory=dict)


class TriggerRule:
    """Base class of a trigger rule. Subclasses set the class attributes and override what
    they use; `scoring.triggers.registry.register` makes them known."""

    trigger_type: ClassVar[str]  # the topic `triggers.<type>` and the records' `type`
    code: ClassVar[int]  # fixed forever; 0-99 built-ins, 100+ plug-ins
    Config: ClassVar[type[RuleConfig]] = RuleConfig
    priority: ClassVar[int] = 100  # evaluation order within a moment (the daily cap's order)
    doc: ClassVar[str] = ""  # one line for the docs table
    fires_on: ClassVar[str] = "event"  # "event", "sweep" or "event or sweep" (docs)

    def __init__(self, config: RuleConfig, engage: EngageConfig) -> None:
        self.config = config
        self.engage = engage

    @classmethod
    def schema_path(cls) -> Path:
        """The JSON Schema of this type's records (beside the built-ins by default)."""
        return SCHEMAS / f"trigger.{cls.trigger_type}.v1.json"

    @classmethod
    def check(cls, config: RuleConfig, engage: EngageConfig) -> None:
        """Raise scoring.errors.ConfigError for a bad section (keys under triggers.<type>)."""

    def on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        """A counted event (`ctx.event`); append candidates to `out`."""

    def on_sweep(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        """A sweep of a silent user at the watermark (`ctx.now_ms`)."""

    def on_signals(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        """What engine extensions decided at this moment (`ctx.signals`: a referral credited,
        a fraud flag...), at an event, a sweep or a message."""

    def next_due_ms(self, state: UserState) -> int | None:
        """When this rule needs the user swept (None: it does not)."""
        return None

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        """(a case that fires, a near miss that does not)."""
        raise NotImplementedError(f"{cls.__name__} has no contract cases")


CONTRACT_T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z: when contract cases start


def varied_engagement(n: int, user: str = "contract-user") -> tuple[Step, ...]:
    """`n` events a minute apart cycling through purchase, share, referral, post, comment:
    a user climbing every dimension (the default config reaches silver at 4, vip at 25)."""
    kinds = ("purchase", "share", "referral", "post", "comment")
    return tuple(
        Step(CONTRACT_T0 + i * 60_000, kinds[i % 5], user,
             {"amount": 100.0} if kinds[i % 5] == "purchase" else {})
        for i in range(n)
    )


def rounded(x: float) -> float:
    return round(x, 4)


def after_bad_rating(state: UserState, now_ms: int, quiet_days: float) -> bool:
    """True when the user gave a bad rating (scoring.satisfaction) less than `quiet_days`
    before `now_ms`: the guard admission applies for rules with
    `quiet_after_bad_rating_days`, and rules may test themselves."""
    bad = state.last_bad_rating_ms
    return bool(quiet_days and bad and 0 <= now_ms - bad < quiet_days * MS_PER_DAY)


def cooldown_ends_ms(ts: TriggerState, code: int, cooldown_days: float) -> int | None:
    """When the type's cooldown for this user ends (None: no cooldown running or configured)."""
    last = ts.last_fired_ms.get(code)
    if last is None or not cooldown_days:
        return None
    return last + int(cooldown_days * MS_PER_DAY)
