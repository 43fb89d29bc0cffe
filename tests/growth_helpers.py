"""Builders for the offline growth commands' tests: event and trigger files, CLI runs."""

from __future__ import annotations

import gzip
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from scoring.timeutil import format_rfc3339_ms
from streams.cli import main
from tests.helpers import DAY, T0

SCHEMAS = resources.files("scoring").joinpath("schemas")


def schema_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMAS.joinpath(name).read_text()))


def event(user: str, type_: str, ts_ms: int, event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or f"{user}-{type_}-{ts_ms}", "user_id": user, "type": type_,
            "ts": format_rfc3339_ms(ts_ms)}


def trigger(
    user: str, type_: str, variant: str, at_ms: int, tier: str = "bronze"
) -> dict[str, Any]:
    """A complete trigger v1 record, as `engage replay --triggers` writes one."""
    episode = f"return@{at_ms}"
    return {
        "schema": "trigger/v1",
        "trigger_id": hashlib.sha256(f"{user}|{type_}|{episode}".encode()).hexdigest()[:32],
        "type": type_, "user_id": user, "episode": episode, "variant": variant,
        "event_time": format_rfc3339_ms(at_ms), "emitted_at": format_rfc3339_ms(at_ms),
        "expires_at": format_rfc3339_ms(at_ms + 72 * 3_600_000),
        "reason": {"rule": f"{type_}.silence", "features": {}},
        "score": 12.5, "tier": tier, "churn_probability": None, "details": {},
    }


def write_jsonl(
    path: Path, records: list[dict[str, Any]], extra_lines: tuple[str, ...] = ()
) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records) + "".join(f"{x}\n" for x in extra_lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def engage_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    """Run an `engage` command that prints JSON; its stdout, decoded."""
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def engage_misuse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a misused `engage` command: exit status 2, usage and no traceback; its stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "Traceback" not in err
    assert "usage: engage" in err
    return err


def exact_uplift_history(tmp: Path) -> tuple[Path, Path]:
    """Hand-built triggers (window 7 days): treatment t1..t4 return, or not, at known times;
    control c1..c4 likewise; t5's window is not over when the history ends."""
    d = T0 + DAY
    triggers = [
        trigger("t1", "win_back", "treatment", d), trigger("t2", "win_back", "treatment", d),
        trigger("t3", "win_back", "treatment", d), trigger("t4", "win_back", "treatment", d),
        trigger("c1", "win_back", "control", d), trigger("c2", "win_back", "control", d),
        trigger("c3", "win_back", "control", d),
        trigger("c4", "win_back", "control", d),  # first trigger: control ...
        trigger("c4", "win_back", "treatment", d + 4 * DAY),  # ... so this one changes nothing
        trigger("t5", "win_back", "treatment", T0 + 25 * DAY),  # censored: ends after day 30
        trigger("t1", "reengagement_nudge", "treatment", d),  # a type with no control group
    ]
    events = [
        event("t1", "session_start", d), event("t1", "purchase", d + 2 * DAY),
        event("t2", "view", d + 3 * DAY),
        event("t3", "view", d + 9 * DAY),  # after the window
        event("t4", "like", d + 6 * DAY),
        event("c1", "view", d + DAY),
        event("c2", "session_start", d),  # the trigger's own moment: not a return
        event("c4", "view", d + 3 * DAY),
        event("t5", "view", T0 + 26 * DAY),
        event("observer", "view", T0 + 30 * DAY),
    ]
    return (write_jsonl(tmp / "triggers.jsonl.gz", triggers),
            write_jsonl(tmp / "events.jsonl", events, extra_lines=('{"not": "an event"}',)))
