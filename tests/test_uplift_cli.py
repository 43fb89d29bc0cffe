"""`engage uplift` on constructed histories: a real effect is found, no effect is not, the
counts are exact, the output matches its schema, and misuse prints usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scoring.uplift import Arm, compare
from tests.growth_helpers import (
    engage_json,
    engage_misuse,
    event,
    exact_uplift_history,
    read_jsonl,
    schema_validator,
    write_jsonl,
)
from tests.helpers import DAY, MINUTE, T0

USERS = 200
RULES = "[triggers.win_back]\nholdout_share = 0.5\n"  # half the returning users held out


def _return_history(tmp: Path, treated_rate: float, control_rate: float,
                    capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path]:
    """USERS users are active on day 0 and come back on day 16, which fires `win_back` (a
    return after >= 14 silent days). Of each group, the given share returns again on day 18.
    Returns (events, triggers as `engage replay --triggers` wrote them, rules)."""
    rules = tmp / "rules.toml"
    rules.write_text(RULES)
    users = [f"u{i:03d}" for i in range(USERS)]
    first = [e for i, u in enumerate(users)
             for e in (event(u, "session_start", T0 + i * MINUTE),
                       event(u, "session_start", T0 + 16 * DAY + i * MINUTE))]
    first.sort(key=lambda e: str(e["ts"]))
    phase1, phase1_triggers = write_jsonl(tmp / "phase1.jsonl", first), tmp / "phase1.trig.jsonl"
    engage_json(["replay", str(phase1), "--config", str(rules), "--triggers",
                 str(phase1_triggers), "--no-progress"], capsys)
    variant = {t["user_id"]: t["variant"] for t in read_jsonl(phase1_triggers)
               if t["type"] == "win_back"}
    assert len(variant) == USERS
    again = []
    for group, rate in (("treatment", treated_rate), ("control", control_rate)):
        members = [u for u in users if variant[u] == group]
        for j, u in enumerate(members):
            if j < round(rate * len(members)):
                again.append(event(u, "view", T0 + 18 * DAY + users.index(u) * MINUTE))
    observer = event("observer", "view", T0 + 30 * DAY)  # others' activity: windows are over
    full = sorted(first + again + [observer], key=lambda e: str(e["ts"]))
    events, triggers = write_jsonl(tmp / "events.jsonl.gz", full), tmp / "triggers.jsonl"
    engage_json(["replay", str(events), "--config", str(rules), "--triggers", str(triggers),
                 "--no-progress"], capsys)
    assert {t["user_id"]: t["variant"] for t in read_jsonl(triggers)
            if t["type"] == "win_back"} == variant
    return events, triggers, rules


def _row(rows: list[dict[str, Any]], type_: str, outcome: str = "returned") -> dict[str, Any]:
    found, = (r for r in rows if r["type"] == type_ and r["outcome"] == outcome)
    return found


def test_a_real_effect_has_an_interval_above_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, triggers, _ = _return_history(tmp_path, 0.8, 0.2, capsys)
    rows = engage_json(["uplift", "--triggers", str(triggers), "--events", str(events),
                        "--json"], capsys)
    schema_validator("uplift.v1.json").validate(rows)
    win_back = _row(rows, "win_back")
    treated, control = win_back["treatment"], win_back["control"]
    assert treated["users"] + control["users"] == USERS and win_back["censored_users"] == 0
    assert treated["converted"] == round(0.8 * treated["users"])
    assert control["converted"] == round(0.2 * control["users"])
    assert 0.5 < win_back["uplift"] < 0.7
    assert 0 < win_back["ci_low"] < win_back["uplift"] < win_back["ci_high"]
    assert win_back["p_value"] < 1e-6 and win_back["small_sample"] is False


def test_no_effect_has_an_interval_around_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, triggers, _ = _return_history(tmp_path, 0.5, 0.5, capsys)
    rows = engage_json(["uplift", "--triggers", str(triggers), "--events", str(events),
                        "--window-days", "7", "--json"], capsys)
    win_back = _row(rows, "win_back")
    assert abs(win_back["uplift"]) < 0.01
    assert win_back["ci_low"] < 0 < win_back["ci_high"]
    assert win_back["p_value"] > 0.9


def test_exact_counts_per_group_and_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    triggers, events = exact_uplift_history(tmp_path)
    rows = engage_json(["uplift", "--triggers", str(triggers), "--events", str(events),
                        "--outcome", "returned", "purchase", "--json"], capsys)
    schema_validator("uplift.v1.json").validate(rows)
    assert [(r["type"], r["outcome"]) for r in rows] == [
        ("reengagement_nudge", "returned"), ("reengagement_nudge", "purchase"),
        ("win_back", "returned"), ("win_back", "purchase")]
    returned = _row(rows, "win_back")
    expected = compare(Arm(4, 3), Arm(4, 2))
    assert returned == {
        "type": "win_back", "outcome": "returned", "window_days": 7.0,
        "treatment": {"users": 4, "converted": 3, "rate": 0.75},
        "control": {"users": 4, "converted": 2, "rate": 0.5},
        "uplift": 0.25, "ci_low": expected.ci_low, "ci_high": expected.ci_high,
        "p_value": expected.p_value, "confidence": 0.95, "small_sample": True,
        "censored_users": 1,
    }
    purchase = _row(rows, "win_back", "purchase")
    assert (purchase["treatment"], purchase["control"], purchase["uplift"]) == (
        {"users": 4, "converted": 1, "rate": 0.25}, {"users": 4, "converted": 0, "rate": 0.0},
        0.25)
    nudge = _row(rows, "reengagement_nudge")
    assert (nudge["treatment"], nudge["control"]) == (
        {"users": 1, "converted": 1, "rate": 1.0}, {"users": 0, "converted": 0, "rate": None})
    assert (nudge["uplift"], nudge["ci_low"], nudge["p_value"], nudge["small_sample"]) == (
        None, None, None, None)


def test_human_output_is_an_aligned_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import main

    triggers, events = exact_uplift_history(tmp_path)
    capsys.readouterr()
    assert main(["uplift", "--triggers", str(triggers), "--events", str(events)]) == 0
    out = capsys.readouterr().out
    assert ("Events: 10 valid, 1 rejected, from 2026-01-02T00:00:00.000Z to "
            "2026-01-31T00:00:00.000Z" in out)
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("type "))
    win_back = next(line for line in lines if line.startswith("win_back "))
    nudge = next(line for line in lines if line.startswith("reengagement_nudge "))
    assert len(header) == len(win_back)  # right-aligned columns end together
    assert win_back.split() == ["win_back", "returned", "4", "3", "75.0%", "4", "2", "50.0%",
                                "+25.0", f"[{100 * compare(Arm(4, 3), Arm(4, 2)).ci_low:+.1f},",
                                f"{100 * compare(Arm(4, 3), Arm(4, 2)).ci_high:+.1f}]",
                                f"{compare(Arm(4, 3), Arm(4, 2)).p_value:.3f}*", "1"]
    assert "no control group" in nudge
    assert "* a group is too small" in out


def test_misuse_prints_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    triggers, events = exact_uplift_history(tmp_path)
    t, e = str(triggers), str(events)
    cases = [
        ([], "give --triggers FILE and --events FILE (or --from-kafka)"),
        (["--triggers", t], "give --triggers FILE and --events FILE"),
        (["--triggers", "/no/t.jsonl", "--events", e], "triggers file not found: /no/t.jsonl"),
        (["--triggers", t, "--events", str(tmp_path)], "events is not a file"),
        (["--triggers", t, "--events", e, "--outcome", "teleport"],
         "--outcome 'teleport' is neither 'returned' nor a configured event type"),
        (["--triggers", t, "--events", e, "--window-days", "0"],
         "--window-days must be a positive number of days"),
        (["--triggers", t, "--events", e, "--window-days", "nan"],
         "--window-days must be a positive number of days"),
        (["--triggers", t, "--events", e, "--window-days", "week"], "invalid float value"),
        (["--from-kafka", "--triggers", t], "--from-kafka reads topics"),
        (["--triggers", e, "--events", e], "record 1: not a trigger v1 record"),
    ]
    for argv, message in cases:
        assert message in engage_misuse(["uplift", *argv], capsys), argv
    not_gzip = tmp_path / "fake.jsonl.gz"
    not_gzip.write_text('{"a": 1}\n')
    assert "cannot read events file" in engage_misuse(
        ["uplift", "--triggers", t, "--events", str(not_gzip)], capsys)
    junk = write_jsonl(tmp_path / "junk.jsonl", [{"event_id": "x"}], extra_lines=("oops",))
    assert "no valid events in" in engage_misuse(
        ["uplift", "--triggers", t, "--events", str(junk)], capsys)
