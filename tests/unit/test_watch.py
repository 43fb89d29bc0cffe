"""The demo's console: one summary line per interval, the notable triggers with score and tier
move, control-group triggers marked, the rest counted; and the prefix it reads."""

from __future__ import annotations

from typing import Any

import pytest

from streams.topic_prefix import resolve_prefix
from streams.topics import TopicNames
from streams.watch import MAX_NOTABLE_PER_INTERVAL, Console

NAMES = TopicNames(prefix="demo.")


def trigger(kind: str, user: str, variant: str = "treatment", **details: Any) -> dict[str, Any]:
    return {"type": kind, "user_id": user, "variant": variant, "score": 96.44, "tier": "vip",
            "event_time": "2026-01-14T13:05:00.000Z", "details": details}


def score(user: str, tier: str, as_of: str = "2026-01-14T14:00:00.000Z") -> dict[str, Any]:
    return {"user_id": user, "tier": tier, "as_of": as_of, "engagement_score": 50.0,
            "churn_probability": None, "calibration": "population"}


def test_notable_triggers_and_one_summary_per_interval() -> None:
    lines: list[str] = []
    console = Console(NAMES, emit=lines.append)
    for i, tier in enumerate(["bronze", "bronze", "silver", "gold", "vip"]):
        console.record(NAMES.scores, score(f"u{i}", tier))
    console.record(NAMES.audit, trigger("streak", "u1"))  # counted, not shown
    console.record(NAMES.audit, trigger("tier_change", "u2", from_tier="bronze",
                                        to_tier="silver"))
    console.record(NAMES.audit, trigger("vip_promotion", "u4", from_tier="gold", to_tier="vip"))
    console.record(NAMES.audit, trigger("win_back", "u0", variant="control"))
    console.record(NAMES.dlq, {"reason": "late"})
    console.flush()
    assert lines == [
        "   vip promotion        u4         score  96.4  gold → vip       2026-01-14 13:05",
        "   win back             u0         score  96.4  vip              2026-01-14 13:05"
        "  [control: held out, not sent]",
        "── 2026-01-14 14:00 | 5 users | bronze 2 · silver 1 · gold 1 · vip 1 | triggers 4 "
        "(1 control): streak 1, tier_change 1, vip_promotion 1, win_back 1 | dead letters 1",
    ]
    console.flush()  # a quiet interval: the summary says so
    assert lines[-1].endswith("| no triggers")


def test_a_busy_interval_is_capped() -> None:
    lines: list[str] = []
    console = Console(NAMES, emit=lines.append)
    for i in range(MAX_NOTABLE_PER_INTERVAL + 4):
        console.record(NAMES.audit, trigger("referral_ask", f"u{i}"))
    console.flush()
    assert len(lines) == MAX_NOTABLE_PER_INTERVAL + 1
    assert lines[-1].endswith("| 4 more notable not shown")


def test_the_prefix_given_or_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    never = "127.0.0.1:1"  # not asked: no broker is reached
    assert resolve_prefix(never, "t1.", lambda n: n.audit) == "t1."
    monkeypatch.setenv("ENGAGE_TOPIC_PREFIX", "tenant.")
    assert resolve_prefix(never, None, lambda n: n.audit) == "tenant."
