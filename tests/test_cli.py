"""CLI misuse: a clear message and usage on stderr, exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return int(info.value.code or 0), err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["replay"], "the following arguments are required: input"),
        (["replay", "/no/such/file.jsonl"], "input file not found"),
        (["worker", "--partitions", "0"], "must be > 0"),
        (["model", "swap"], "needs a model NAME"),
        (["model", "dance"], "invalid choice: 'dance'"),
        (["simulate", "--users", "5"], "exactly one of --out FILE or --topic TOPIC"),
        (["config", "check", "/no/such/rules.toml"], "config file not found"),
    ],
)
def test_misuse_prints_usage_and_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert "usage: engage" in err


def test_bad_as_of_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    code, err = run(["replay", str(events), "--as-of", "yesterday"], capsys)
    assert code == 2 and "neither RFC 3339" in err


def test_bad_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[scoring]\nhalf_life_days = -2\n")
    code, err = run(["config", "check", str(rules)], capsys)
    assert code == 2 and "`scoring.half_life_days`" in err and "greater than 0" in err


def _simulated_events(tmp_path: Path, users: int, days: int) -> Path:
    import json

    from simulator import generate

    stream, _ = generate(users=users, days=days, seed=2)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in stream) + "\n")
    return events


def test_replay_writes_snapshot_and_triggers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    events = _simulated_events(tmp_path, users=20, days=10)
    snapshot, triggers = tmp_path / "snap.jsonl", tmp_path / "trig.jsonl"
    assert main(["replay", str(events), "--snapshot", str(snapshot), "--triggers",
                 str(triggers), "--no-progress"]) == 0
    rows = [json.loads(line) for line in snapshot.read_text().splitlines()]
    assert len(rows) == 20
    for key in ("user_id", "as_of", "engagement_score", "dimensions", "tier",
                "days_since_last_event", "churn_probability"):
        assert key in rows[0]
    assert all(json.loads(line)["trigger_id"] for line in triggers.read_text().splitlines())
    summary = json.loads(capsys.readouterr().out)
    assert summary["users"] == 20


def test_replay_pays_for_the_score_refresh_only_when_it_writes_or_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    events = _simulated_events(tmp_path, users=5, days=3)
    refresh = []
    for extra in ([], ["--refresh"]):
        assert main(["replay", str(events), "--no-progress", *extra]) == 0
        refresh.append(json.loads(capsys.readouterr().out)["refresh_every_hours"])
    assert refresh == [0.0, 24.0]


def test_a_worker_refuses_the_public_development_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("ENGAGE_MODEL_SIGNING_KEY", "ENGAGE_MODEL_SIGNING_KEY_FILE",
                 "ENGAGE_INSECURE_DEV_KEY"):
        monkeypatch.delenv(name, raising=False)
    code, err = run(["worker", "--broker", "127.0.0.1:1"], capsys)
    assert code == 2 and "refusing to start with the built-in development key" in err
    monkeypatch.setenv("ENGAGE_MODEL_SIGNING_KEY_FILE", str(tmp_path / "missing"))
    code, err = run(["worker", "--broker", "127.0.0.1:1"], capsys)
    assert code == 2 and "ENGAGE_MODEL_SIGNING_KEY_FILE=" in err


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    from scoring.config import load_config
    from streams.secrets import read_secret, signing_key

    key_file = tmp_path / "key"
    key_file.write_text("  from-a-file\n")
    assert read_secret("K", {"K_FILE": str(key_file)}) == "from-a-file"
    assert read_secret("K", {"K": "direct", "K_FILE": str(key_file)}) == "direct"
    assert read_secret("K", {}) is None
    config = load_config(None)
    assert signing_key(config, {}).is_dev
    assert signing_key(config, {"ENGAGE_MODEL_SIGNING_KEY_FILE": str(key_file)}).key == (
        b"from-a-file"
    )
