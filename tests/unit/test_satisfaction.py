"""Satisfaction from ratings: bad ones pull it down, good ones lift it, no rating is unknown;
rules read it, and no rule asks a user for a referral right after a bad review."""

from __future__ import annotations

from typing import Any

import pytest

from scoring.config import config_from_dict
from scoring.engine import Outcome
from scoring.events import Event, EventRules, InvalidEvent, Properties, decode_event
from scoring.state import UserState
from scoring.triggers.admission import TriggerRules
from tests.helpers import DAY, HOUR, T0, ReadBack, wire


class Ratings:
    """One engine with the trigger rules; reviews and feedback with ratings."""

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.config = config_from_dict(overrides or {})
        self.suppressed: list[tuple[str, str]] = []
        rules = TriggerRules(self.config, lambda t, why: self.suppressed.append((t, why)))
        self.engine = ReadBack(self.config, triggers=rules)
        self.states: dict[str, UserState] = {}
        self.n = 0

    def send(self, user: str, etype: str, ts: int, rating: int | None = None) -> Outcome:
        self.n += 1
        props = Properties(rating=rating) if rating is not None else None
        event = Event(f"{user}-{self.n}", user, etype, ts, 0.0, None, props)
        out = self.engine.apply(self.states.get(user), event, ts)
        assert out.state is not None
        self.states[user] = out.state
        return out

    def satisfaction(self, user: str, at: int) -> dict[str, Any]:
        record: dict[str, Any] = self.engine.score_record(self.states[user], user, at)
        return record["satisfaction"]  # type: ignore[no-any-return]


def mean(ratings: list[tuple[int, float]], at_days: float, half_life: float = 60.0) -> float:
    """The documented formula: 100 * sum(w r') / sum(w), r' = (r - 1) / 4, w = 2^-age/h."""
    weights = [2 ** (-(at_days - day) / half_life) for _, day in ratings]
    values = [(r - 1) / 4 for r, _ in ratings]
    return 100 * sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)


def test_bad_reviews_lower_satisfaction_and_a_good_one_raises_it() -> None:
    sim = Ratings()
    sim.send("u", "view", T0)
    assert sim.satisfaction("u", T0) == {
        "score": None, "ratings": 0, "last_rating": None, "last_bad_rating_at": None,
    }  # no rating: unknown, not 0
    sim.send("u", "review", T0 + DAY, rating=4)
    assert sim.satisfaction("u", T0 + DAY)["score"] == 75.0
    sim.send("u", "review", T0 + 2 * DAY, rating=1)
    after_bad = sim.satisfaction("u", T0 + 2 * DAY)
    assert after_bad["score"] == pytest.approx(mean([(4, 1), (1, 2)], 2), abs=0.01)
    assert after_bad["score"] < 75.0
    sim.send("u", "feedback", T0 + 3 * DAY, rating=2)
    after_two_bad = sim.satisfaction("u", T0 + 3 * DAY)
    assert after_two_bad["score"] == pytest.approx(mean([(4, 1), (1, 2), (2, 3)], 3), abs=0.01)
    assert after_two_bad["score"] < after_bad["score"]
    assert after_two_bad["last_bad_rating_at"] == "2026-01-04T00:00:00.000Z"
    sim.send("u", "review", T0 + 4 * DAY, rating=5)
    after_good = sim.satisfaction("u", T0 + 4 * DAY)
    assert after_good["score"] == pytest.approx(
        mean([(4, 1), (1, 2), (2, 3), (5, 4)], 4), abs=0.01
    )
    assert after_good["score"] > after_two_bad["score"]
    assert after_good["ratings"] == 4 and after_good["last_rating"] == 5
    # silence does not change it: numerator and denominator decay alike
    assert sim.satisfaction("u", T0 + 40 * DAY)["score"] == after_good["score"]


def test_a_rating_on_a_type_that_does_not_rate_is_ignored_and_order_does_not_matter() -> None:
    in_order, late = Ratings(), Ratings()
    in_order.send("u", "purchase", T0, rating=1)  # not a rating event type
    assert in_order.satisfaction("u", T0)["score"] is None
    for sim, order in ((in_order, (1, 5)), (late, (5, 1))):
        sim.send("u", "review", T0 + order[0] * HOUR // 10, rating=order[0])
        sim.send("u", "review", T0 + order[1] * HOUR // 10, rating=order[1])
    assert in_order.satisfaction("u", T0 + HOUR)["score"] == pytest.approx(
        late.satisfaction("u", T0 + HOUR)["score"], abs=1e-9
    )


def test_the_rating_scale_is_configurable_and_enforced() -> None:
    ten = {"scoring": {"satisfaction": {"rating_min": 0, "rating_max": 10, "bad_at_most": 4,
                                        "good_at_least": 8}}}
    sim = Ratings(ten)
    sim.send("u", "review", T0, rating=8)
    assert sim.satisfaction("u", T0)["score"] == 80.0
    rules = EventRules.from_config(sim.config)
    ok = decode_event(wire("u", "review", T0, rating=10), now_ms=T0, rules=rules)
    assert ok.properties is not None and ok.properties.rating == 10
    with pytest.raises(InvalidEvent) as bad:
        decode_event(wire("u", "review", T0, rating=11), now_ms=T0,
                     rules=EventRules.from_config(config_from_dict({})))
    assert bad.value.reason == "invalid_field" and "1-5" in bad.value.detail


def asks(out: Outcome) -> list[dict[str, Any]]:
    return [t for t in out.triggers if t["type"] == "referral_ask"]


def happy_user(sim: Ratings, user: str, days: range) -> list[Outcome]:
    return [sim.send(user, "review", T0 + d * DAY, rating=5) for d in days]


def test_referral_ask_reads_satisfaction() -> None:
    sim = Ratings()
    first, second = happy_user(sim, "happy", range(2))
    assert asks(first) == []  # one rating is not a pattern (min_ratings = 2)
    (ask,) = asks(second)
    assert ask["reason"] == {
        "rule": "referral_ask.satisfied_rater",
        "features": {"satisfaction": 100.0, "rating": 5, "ratings": 2,
                     "min_satisfaction": 80.0},
    }
    # a lukewarm user with good ratings on average but under 80: no ask
    sim.send("meh", "review", T0, rating=3)
    assert asks(sim.send("meh", "review", T0 + DAY, rating=4)) == []


def test_never_asked_for_a_referral_right_after_a_bad_review() -> None:
    sim = Ratings({"triggers": {"referral_ask": {"min_ratings": 5}}})
    user = "fan"
    happy_user(sim, user, range(4))
    sim.send(user, "review", T0 + 4 * DAY, rating=1)  # a bad review
    outs = happy_user(sim, user, range(5, 12))
    # satisfaction is back above 80 at the sixth review, yet nothing for 30 days
    assert sim.satisfaction(user, T0 + 6 * DAY)["score"] > 80
    assert [t for o in outs for t in asks(o)] == []
    assert ("referral_ask", "bad_rating") in sim.suppressed
    (ask,) = asks(sim.send(user, "review", T0 + 35 * DAY, rating=5))  # 31 days later
    assert ask["reason"]["features"]["ratings"] == 13


def test_the_guard_holds_the_ambassador_rule_too() -> None:
    sim = Ratings()
    for i in range(100):  # the day's population: one share each
        sim.send(f"crowd-{i}", "share", T0 + i * 1000)
    sim.send("upset", "review", T0 + HOUR, rating=1)
    sim.send("calm", "review", T0 + HOUR, rating=4)
    day1 = T0 + DAY + 2 * HOUR
    calm = [t["type"] for t in sim.send("calm", "referral", day1).triggers]
    upset = [t["type"] for t in sim.send("upset", "referral", day1).triggers]
    assert "ambassador_candidate" in calm
    assert "ambassador_candidate" not in upset
    assert sim.suppressed.count(("ambassador_candidate", "bad_rating")) == 1
