"""`referral_flagged`: a referral looks like fraud (a self-referral, a ring, a farm of
invitees with no activity of their own, a burst of conversions) and its credit is withheld;
the record carries the evidence (scoring/referrals.py decides)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scoring.referrals import FLAGGED
from scoring.triggers.registry import register
from scoring.triggers.rule import Candidate, ContractCase, Step, TriggerRule

if TYPE_CHECKING:
    from scoring.hooks import TriggerContext


@register
class ReferralFlagged(TriggerRule):
    trigger_type = "referral_flagged"
    code = 9
    priority = 91
    fires_on = "event, message or sweep"
    doc = "a referral looks like fraud (self, ring, farm, burst): credit withheld, evidence kept"

    def on_signals(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        for s in ctx.signals:
            if s.kind == FLAGGED:
                out.append(Candidate(self.trigger_type, s.episode,
                                     f"referral_flagged.{s.details.get('reason')}",
                                     s.features, s.details))

    @classmethod
    def contract_cases(cls) -> tuple[ContractCase, ContractCase]:
        t0 = 1_767_225_600_000
        fires = ContractCase(
            (Step(t0, "referral", properties={"target_user_id": "contract-user"}),), fires=True
        )
        near = ContractCase(
            (Step(t0, "referral", properties={"target_user_id": "someone-else"}),), fires=False
        )
        return fires, near
