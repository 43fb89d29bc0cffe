"""`engage report`: exact population figures for a small constructed history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.growth_helpers import engage_json, engage_misuse, event, schema_validator, write_jsonl
from tests.helpers import DAY, HOUR

MONDAY = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday


def _history(tmp: Path) -> Path:
    """a: days 0, 7, 8 (two purchases), 14; b: day 1 (one purchase, sent twice), day 2
    (referral); c: day 9 (referral), day 20; d: day 15. The last day, 20, is a Sunday."""
    at = lambda day: MONDAY + day * DAY + 10 * HOUR  # noqa: E731
    events = [
        event("a", "session_start", at(0)), event("a", "purchase", at(7)),
        event("a", "purchase", at(8)), event("a", "view", at(14)),
        event("b", "purchase", at(1), event_id="p1"),
        event("b", "purchase", at(1) + 1000, event_id="p1"),  # a producer retry
        event("b", "referral", at(2)),
        event("c", "referral", at(9)), event("c", "like", at(20)),
        event("d", "view", at(15)),
    ]
    bad = '{"event_id": "x", "user_id": "e", "type": "teleport", "ts": 1767600000000}'
    return write_jsonl(tmp / "events.jsonl.gz", events, extra_lines=(bad,))


def test_exact_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = engage_json(["report", str(_history(tmp_path)), "--json"], capsys)
    schema_validator("population-report.v1.json").validate(report)
    assert report == {
        "users": 4, "events": 10, "first_day": "2026-01-05", "last_day": "2026-01-25",
        "retention": {"last_week_complete": True, "cohorts": [
            {"week": "2026-01-05", "users": 2, "active": [2, 1, 1], "retention": [1.0, 0.5, 0.5]},
            {"week": "2026-01-12", "users": 1, "active": [1, 1], "retention": [1.0, 1.0]},
            {"week": "2026-01-19", "users": 1, "active": [1], "retention": [1.0]},
        ]},
        "repurchase": {"purchasers": 2, "repeat_purchasers": 1, "rate": 0.5},
        "referral": {"users": 4, "referrers": 2, "rate": 0.5},
        # user-days: a 4, b 2, c 2, d 1 over 21 days (the history is shorter than 28)
        "stickiness": {"window_start": "2026-01-05", "window_end": "2026-01-25",
                       "window_days": 21, "mean_dau": 9 / 21, "mau": 4, "dau_mau": 9 / 84},
    }


def test_stickiness_uses_the_last_28_days_and_flags_a_partial_week(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # x is active on days 0..39 (40 days); y on day 5 only; the history ends on a Friday
    events = [event("x", "view", MONDAY + d * DAY) for d in range(40)]
    events.append(event("y", "view", MONDAY + 5 * DAY))
    report = engage_json(["report", str(write_jsonl(tmp_path / "e.jsonl", events)), "--json"],
                         capsys)
    schema_validator("population-report.v1.json").validate(report)
    assert report["stickiness"] == {"window_start": "2026-01-17", "window_end": "2026-02-13",
                                    "window_days": 28, "mean_dau": 1.0, "mau": 1, "dau_mau": 1.0}
    assert report["retention"]["last_week_complete"] is False
    assert report["retention"]["cohorts"] == [
        {"week": "2026-01-05", "users": 2, "active": [2, 1, 1, 1, 1, 1],
         "retention": [1.0, 0.5, 0.5, 0.5, 0.5, 0.5]}]


def test_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    capsys.readouterr()
    assert main(["report", str(_history(tmp_path))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "4 users, 10 valid events, 2026-01-05 to 2026-01-25"
    assert "repurchase rate  50.0%  (1 of 2 purchasers bought again)" in lines
    assert "referral rate    50.0%  (2 of 4 users referred someone)" in lines
    assert ("DAU/MAU          10.7%  (mean DAU 0.4 / MAU 4, 21 days 2026-01-05 to 2026-01-25)"
            in lines)
    table = lines[lines.index("cohort      users    w0    w1   w2"):]
    assert table == ["cohort      users    w0    w1   w2",
                     "2026-01-05      2  100%   50%  50%",
                     "2026-01-12      1  100%  100%",
                     "2026-01-19      1  100%"]


def test_misuse_prints_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "the following arguments are required: input" in engage_misuse(["report"], capsys)
    assert "events file not found: /no/events.jsonl" in engage_misuse(
        ["report", "/no/events.jsonl"], capsys)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert f"no valid events in {empty}" in engage_misuse(["report", str(empty)], capsys)
