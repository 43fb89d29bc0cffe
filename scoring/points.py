"""An optional points ledger (an engine extension): admitted treatment triggers earn the
points configured for their type, `reward_redeemed` events spend them (properties.amount),
oldest first; points expire `expire_days` after they were earned. The balance never goes
negative: a redemption larger than the balance is refused whole and counted. Applied once,
whatever replays happen, like everything in a user's state."""

from __future__ import annotations

from typing import ClassVar

from scoring.config import EngageConfig
from scoring.extensions import Extension, Moment
from scoring.points_state import PointsState, balance
from scoring.records import Trigger
from scoring.state import UserState
from scoring.timeutil import MS_PER_DAY


class Points(Extension):
    name: ClassVar[str] = "points"

    def __init__(self, config: EngageConfig) -> None:
        super().__init__(config)
        self.c = config.points
        self.expire_ms = int(self.c.expire_days * MS_PER_DAY)

    def _expire(self, p: PointsState, now_ms: int) -> None:
        gone = [lot for lot in p.lots if lot[0] <= now_ms]
        if gone:
            p.expired += sum(n for _, n in gone)
            p.lots = [lot for lot in p.lots if lot[0] > now_ms]

    def on_triggers(self, m: Moment, triggers: list[Trigger]) -> None:
        if not self.c.enabled:
            return
        p = m.state.points
        for t in triggers:
            n = self.c.earn.get(t.type, 0)
            if n and t.variant == "treatment":  # the holdout is not given the incentive
                p.lots.append([m.now_ms + self.expire_ms, n])
                p.earned += n
                m.count("engage_points_total", "earned", amount=n)

    def on_event(self, m: Moment) -> None:
        if not self.c.enabled:
            return
        p = m.state.points
        self._expire(p, m.now_ms)
        event = m.event
        assert event is not None
        if event.type != self.c.redeem_event_type:
            return
        want = int(event.amount)
        if want <= 0:
            return
        if want > balance(p, m.now_ms):
            p.refused += 1
            m.count("engage_points_redemptions_total", "refused")
            return
        left = want
        for lot in p.lots:  # oldest first
            take = min(lot[1], left)
            lot[1] -= take
            left -= take
            if not left:
                break
        p.lots = [lot for lot in p.lots if lot[1] > 0]
        p.spent += want
        m.count("engage_points_redemptions_total", "spent")
        m.count("engage_points_total", "spent", amount=want)

    def next_due_ms(self, state: UserState) -> int | None:
        return None  # expiry is applied lazily, at the user's next moment and when read
