"""`referral_converted`: an invitee this user referred qualified, passed the review period,
and is credited to the user (scoring/referrals.py decides; this announces it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scoring.referrals import CONVERTED
from scoring.timeutil import MS_PER_DAY
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, Step, TriggerRule

if TYPE_CHECKING:
    from scoring.hooks import TriggerContext


@register
class ReferralConverted(TriggerRule):
    trigger_type = "referral_converted"
    code = 8
    priority = 90
    fires_on = "sweep, after the review period"
    doc = "an invitee of the user qualified (a first purchase by default) and is credited"

    def on_signals(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        for s in ctx.signals:
            if s.kind == CONVERTED:
                out.append(Candidate(self.trigger_type, s.episode, "referral_converted.credited",
                                     s.features, s.details))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        invite = Step(t0, "referral", properties={"target_user_id": "friend"})
        qualify = Step(t0 + 3 * MS_PER_DAY, "purchase", user="friend",
                       properties={"amount": 20.0})
        days = (Step(t0 + MS_PER_DAY, "view", user="friend"),
                Step(t0 + 2 * MS_PER_DAY, "view", user="friend"))
        after_hold = Step(t0 + 5 * MS_PER_DAY)
        fires = ContractCase((invite, *days, qualify, after_hold), fires=True)
        too_late = Step(t0 + 40 * MS_PER_DAY, "purchase", user="friend",
                        properties={"amount": 20.0})  # outside the 30-day window
        near = ContractCase((invite, too_late, Step(t0 + 42 * MS_PER_DAY)), fires=False)
        return fires, near
