"""What a change of rules does to the triggers of a history: which triggers and users it adds
or removes, per trigger type and tier, and what it does to the budget.

Triggers are matched by `trigger_id` (user, type, episode: the same moment under both rule
sets has the same id). A trigger counts under the tier it carries; a moment whose tier
differs between the two runs is removed from one tier and added to the other, and unchanged
in its type's total. Only treatment triggers reach users, so only they spend budget; a
change of holdout share moves triggers between variants without adding or removing any.
Pure: the shell runs the two replays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scoring.trigger_records import TriggerRecord, type_rank
from scoring.uplift import TREATMENT

ALL_TIERS = "(all)"


def _per_day(count: int, days: int) -> float | None:
    return count / days if days else None


@dataclass
class _Side:
    triggers: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    treatment: int = 0

    def add(self, t: TriggerRecord) -> None:
        if t.trigger_id in self.triggers:
            return
        self.triggers.add(t.trigger_id)
        self.users.add(t.user_id)
        self.treatment += t.variant == TREATMENT


@dataclass(frozen=True)
class DiffRow:
    """One trigger type and tier (or ALL_TIERS) under the base and the proposed rules."""

    type: str
    tier: str
    base_triggers: int
    proposed_triggers: int
    triggers_added: int
    triggers_removed: int
    base_users: int
    proposed_users: int
    users_added: int  # users with such a trigger under the proposed rules only
    users_removed: int  # users with such a trigger under the base rules only
    base_treatment: int
    proposed_treatment: int

    @property
    def changed(self) -> bool:
        return bool(self.triggers_added or self.triggers_removed
                    or self.base_treatment != self.proposed_treatment)

    def to_json(self, days: int) -> dict[str, Any]:
        row = asdict(self)
        row["base_treatment_per_day"] = _per_day(self.base_treatment, days)
        row["proposed_treatment_per_day"] = _per_day(self.proposed_treatment, days)
        return row


def _row(trigger_type: str, tier: str, base: _Side, proposed: _Side) -> DiffRow:
    return DiffRow(
        trigger_type, tier,
        len(base.triggers), len(proposed.triggers),
        len(proposed.triggers - base.triggers), len(base.triggers - proposed.triggers),
        len(base.users), len(proposed.users),
        len(proposed.users - base.users), len(base.users - proposed.users),
        base.treatment, proposed.treatment,
    )


def diff_triggers(
    base: Iterable[TriggerRecord], proposed: Iterable[TriggerRecord], tiers: Sequence[str] = ()
) -> list[DiffRow]:
    """Per type (in the registry's order): its ALL_TIERS row, then one row per tier, in the
    order of `tiers` (the config's levels), other tiers after them by name."""
    sides: dict[tuple[str, str], tuple[_Side, _Side]] = {}
    for which, triggers in ((0, base), (1, proposed)):
        for t in triggers:
            for tier in (ALL_TIERS, t.tier):
                pair = sides.setdefault((t.type, tier), (_Side(), _Side()))
                pair[which].add(t)

    def order(key: tuple[str, str]) -> tuple[tuple[int, str], bool, int, str]:
        trigger_type, tier = key
        tier_rank = tiers.index(tier) if tier in tiers else len(tiers)
        return type_rank(trigger_type), tier != ALL_TIERS, tier_rank, tier

    return [_row(t, tier, *sides[(t, tier)]) for t, tier in sorted(sides, key=order)]


def treatment_budget(rows: Iterable[DiffRow], days: int) -> dict[str, Any]:
    """Treatment triggers per day of history, before and after, from the ALL_TIERS rows."""
    totals = [r for r in rows if r.tier == ALL_TIERS]
    base = sum(r.base_treatment for r in totals)
    proposed = sum(r.proposed_treatment for r in totals)
    return {"days": days, "base_treatment_triggers": base,
            "proposed_treatment_triggers": proposed,
            "base_per_day": _per_day(base, days), "proposed_per_day": _per_day(proposed, days),
            "change_per_day": _per_day(proposed - base, days)}
