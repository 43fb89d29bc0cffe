"""`engage what-if`: exact changes of triggers, users and budget on a small history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.growth_helpers import engage_json, engage_misuse, event, schema_validator, write_jsonl
from tests.helpers import DAY, T0

# Holdouts off, so every trigger is a treatment one and the budget counts all of them; no
# rule that waits for a sweep, so the figures depend on the events alone.
BASE = """
[triggers.onboarding_stalled]
enabled = false
[triggers.win_back]
holdout_share = 0.0
"""


def _files(tmp: Path, proposed: str) -> tuple[Path, Path, Path]:
    """w1 comes back after 10 silent days, w2 after 20: today's win_back (>= 14 days) fires
    for w2 only. Both post on day 0, which earns each the `first_post` milestone."""
    events = [event("w1", "post", T0), event("w2", "post", T0 + 1000),
              event("w1", "session_start", T0 + 10 * DAY),
              event("w2", "session_start", T0 + 20 * DAY)]
    base, new = tmp / "base.toml", tmp / "new.toml"
    base.write_text(BASE)
    new.write_text(BASE + proposed)
    return write_jsonl(tmp / "events.jsonl", events), base, new


def _row(result: dict[str, Any], type_: str, tier: str = "(all)") -> dict[str, Any]:
    found, = (r for r in result["rows"] if r["type"] == type_ and r["tier"] == tier)
    return found


def test_a_shorter_win_back_silence_adds_one_trigger_and_one_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, base, new = _files(tmp_path, "min_silence_days = 7.0\n")
    result = engage_json(["what-if", str(events), "--base", str(base), "--config", str(new),
                          "--json"], capsys)
    schema_validator("what-if.v1.json").validate(result)
    assert [(r["type"], r["tier"]) for r in result["rows"]] == [
        ("milestone", "(all)"), ("milestone", "bronze"),
        ("win_back", "(all)"), ("win_back", "bronze")]
    unchanged = {"base_triggers": 2, "proposed_triggers": 2, "triggers_added": 0,
                 "triggers_removed": 0, "base_users": 2, "proposed_users": 2, "users_added": 0,
                 "users_removed": 0, "base_treatment": 2, "proposed_treatment": 2,
                 "base_treatment_per_day": 2 / 21, "proposed_treatment_per_day": 2 / 21}
    assert _row(result, "milestone") == {"type": "milestone", "tier": "(all)", **unchanged}
    win_back = {"base_triggers": 1, "proposed_triggers": 2, "triggers_added": 1,
                "triggers_removed": 0, "base_users": 1, "proposed_users": 2, "users_added": 1,
                "users_removed": 0, "base_treatment": 1, "proposed_treatment": 2,
                "base_treatment_per_day": 1 / 21, "proposed_treatment_per_day": 2 / 21}
    assert _row(result, "win_back") == {"type": "win_back", "tier": "(all)", **win_back}
    assert _row(result, "win_back", "bronze") == {"type": "win_back", "tier": "bronze",
                                                  **win_back}
    assert result["budget"] == {
        "days": 21, "base_treatment_triggers": 3, "proposed_treatment_triggers": 4,
        "base_per_day": 3 / 21, "proposed_per_day": 4 / 21, "change_per_day": 1 / 21}
    assert (result["first_day"], result["last_day"]) == ("2026-01-01", "2026-01-21")


def test_a_larger_holdout_moves_triggers_out_of_the_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, base, new = _files(tmp_path, "holdout_share = 1.0\n")
    new.write_text(BASE.replace("[triggers.win_back]\nholdout_share = 0.0",
                                "[triggers.win_back]\nholdout_share = 1.0"))
    result = engage_json(["what-if", str(events), "--base", str(base), "--config", str(new),
                          "--json"], capsys)
    row = _row(result, "win_back")
    assert (row["base_triggers"], row["proposed_triggers"], row["triggers_added"],
            row["triggers_removed"], row["base_treatment"], row["proposed_treatment"]) == (
        1, 1, 0, 0, 1, 0)
    assert result["budget"]["change_per_day"] == -1 / 21


def test_human_output_shows_changed_types_and_the_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import main

    events, base, new = _files(tmp_path, "min_silence_days = 7.0\n")
    capsys.readouterr()
    assert main(["what-if", str(events), "--base", str(base), "--config", str(new)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[1] == f"base: {base}; proposed: {new}"
    assert [line.split() for line in lines if line.startswith("win_back")] == [
        ["win_back", "(all)", "1", "->", "2", "+1", "0", "1", "->", "2", "+1", "0",
         "0.05", "->", "0.10"],
        ["win_back", "bronze", "1", "->", "2", "+1", "0", "1", "->", "2", "+1", "0",
         "0.05", "->", "0.10"]]
    assert "unchanged: milestone (2)" in lines
    assert lines[-1].startswith("Budget: 0.14 -> 0.19 treatment triggers per day (+0.05)")
    assert "under the proposed rules" in captured.err  # progress goes to stderr

    capsys.readouterr()
    assert main(["what-if", str(events), "--base", str(base), "--config", str(base)]) == 0
    assert "No trigger changes." in capsys.readouterr().out


def test_misuse_prints_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, _, new = _files(tmp_path, "")
    assert "the following arguments are required: --config" in engage_misuse(
        ["what-if", str(events)], capsys)
    assert "events file not found: /no/e.jsonl" in engage_misuse(
        ["what-if", "/no/e.jsonl", "--config", str(new)], capsys)
    assert "config file not found: /no/rules.toml" in engage_misuse(
        ["what-if", str(events), "--config", "/no/rules.toml"], capsys)
    new.write_text("[triggers.win_back]\nholdout_share = 2.0\n")
    assert "`triggers.win_back.holdout_share`" in engage_misuse(
        ["what-if", str(events), "--config", str(new)], capsys)
