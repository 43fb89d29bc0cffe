"""The points ledger: treatment triggers earn, redemptions spend oldest first, points expire,
the balance never goes negative, and a replayed event changes nothing."""

from __future__ import annotations

from scoring.config import config_from_dict
from scoring.events import Event, Properties
from scoring.points_state import balance
from scoring.state import UserState
from streams.engine_factory import build_engine
from tests.helpers import DAY, HOUR, T0

CONFIG = config_from_dict({
    "points": {"enabled": True, "earn": {"milestone": 50}, "expire_days": 10},
    "triggers": {"daily_cap": 100},
})


class Ledger:
    def __init__(self) -> None:
        self.engine = build_engine(CONFIG, churn=None)
        self.state: UserState | None = None
        self.n = 0

    def event(self, etype: str, at: int, amount: float = 0.0, event_id: str | None = None) -> str:
        self.n += 1
        props = Properties(amount=amount) if amount else None
        out = self.engine.apply(
            self.state, Event(event_id or f"e{self.n}", "u", etype, at, amount, None, props), at
        )
        self.state = out.state
        return out.status

    def balance(self, at: int) -> int:
        assert self.state is not None
        return balance(self.state.points, at)


def test_triggers_earn_redemptions_spend_and_points_expire() -> None:
    ledger = Ledger()
    ledger.event("post", T0)  # milestone first_post: +50
    ledger.event("purchase", T0 + HOUR, 10.0)  # milestone first_purchase: +50
    assert ledger.balance(T0 + 2 * HOUR) == 100
    ledger.event("reward_redeemed", T0 + DAY, 70.0)
    assert ledger.balance(T0 + DAY) == 30
    ledger.event("reward_redeemed", T0 + 2 * DAY, 31.0)  # more than the balance: refused
    assert ledger.balance(T0 + 2 * DAY) == 30
    assert ledger.state is not None and ledger.state.points.refused == 1
    assert ledger.balance(T0 + 10 * DAY + 2 * HOUR) == 0  # earned on day 0: gone after 10 days
    record = ledger.engine.score_record(ledger.state, "u", T0 + 2 * DAY)
    assert record.points == 30 and "first_post" in record.badges


def test_a_replayed_redemption_spends_nothing_twice() -> None:
    ledger = Ledger()
    ledger.event("post", T0)
    assert ledger.event("reward_redeemed", T0 + HOUR, 20.0, event_id="r1") == "scored"
    assert ledger.event("reward_redeemed", T0 + HOUR, 20.0, event_id="r1") == "duplicate"
    assert ledger.balance(T0 + HOUR) == 30


def test_the_holdout_earns_nothing() -> None:
    config = config_from_dict({
        "points": {"enabled": True, "earn": {"milestone": 50}},
        "triggers": {"milestone": {"holdout_share": 1.0}},
    })
    engine = build_engine(config, churn=None)
    out = engine.apply(None, Event("e1", "u", "post", T0), T0)
    assert [t.variant for t in out.triggers if t.type == "milestone"] == ["control"]
    assert out.state is not None and balance(out.state.points, T0) == 0
