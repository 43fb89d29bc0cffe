"""Fast tests of the traffic simulator (`simulator` package)."""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import defaultdict
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from simulator import DEFAULT_START_MS, Truth, generate
from simulator.cli import UsageError, add_arguments, default_truth_path, run
from simulator.personas import CHANNELS, EVENT_TYPES

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REQUIRED = ("event_id", "user_id", "type", "ts")
PROPERTY_TYPES: dict[str, type] = {
    "amount": float, "quantity": int, "content_id": str, "target_user_id": str, "rating": int,
}


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def small_run() -> tuple[list[dict[str, Any]], list[Truth]]:
    events, truth = generate(users=150, days=40, seed=11)
    return list(events), truth


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="engage simulate")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_same_seed_same_events() -> None:
    a, _ = generate(users=80, days=20, seed=5)
    b, _ = generate(users=80, days=20, seed=5)
    c, _ = generate(users=80, days=20, seed=6)
    first_a = list(islice(a, 500))
    assert first_a == list(islice(b, 500))
    assert len(first_a) == 500
    assert first_a != list(islice(c, 500))


def test_events_sorted_by_ts(small_run: tuple[list[dict[str, Any]], list[Truth]]) -> None:
    events, _ = small_run
    stamps = [_ms(e["ts"]) for e in events]
    assert stamps == sorted(stamps)
    assert stamps[0] >= DEFAULT_START_MS
    assert stamps[-1] < DEFAULT_START_MS + 40 * 86_400_000


def test_events_follow_contract(small_run: tuple[list[dict[str, Any]], list[Truth]]) -> None:
    events, truth = small_run
    user_ids = {t.user_id for t in truth}
    ids: set[str] = set()
    seen_types: set[str] = set()
    for e in events:
        for field in REQUIRED:
            assert isinstance(e[field], str) and e[field], (field, e)
        assert e["type"] in EVENT_TYPES
        assert TS_RE.match(e["ts"]), e["ts"]
        assert e["user_id"] in user_ids
        assert e.get("channel", "web") in CHANNELS
        assert set(e) <= {*REQUIRED, "channel", "properties"}
        props = e.get("properties", {})
        for key, value in props.items():
            assert isinstance(value, PROPERTY_TYPES[key]), (key, value)
        if e["type"] == "purchase":
            assert props["amount"] > 0 and props["quantity"] >= 1
        if e["type"] == "review":
            assert 1 <= props["rating"] <= 5
        if e["type"] == "referral":
            assert props["target_user_id"] in user_ids
        if e["type"] in ("like", "comment", "share", "view"):
            assert props["content_id"]
        ids.add(e["event_id"])
        seen_types.add(e["type"])
    assert len(ids) == len(events), "event_id must be unique"
    assert {"session_start", "view", "like", "purchase"} <= seen_types


def test_every_session_opens_with_session_start(
    small_run: tuple[list[dict[str, Any]], list[Truth]],
) -> None:
    events, _ = small_run
    firsts: dict[str, str] = {}
    for e in events:
        firsts.setdefault(e["user_id"], e["type"])
    assert set(firsts.values()) == {"session_start"}


def test_truth_matches_events(small_run: tuple[list[dict[str, Any]], list[Truth]]) -> None:
    events, truth = small_run
    assert len(truth) == 150
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for e in events:
        first.setdefault(e["user_id"], e["ts"])
        last[e["user_id"]] = e["ts"]
    churned = [t for t in truth if t.churned]
    assert churned, "lapsing users must churn"
    for t in truth:
        assert t.first_event_at == first[t.user_id]
        assert t.last_event_at == last[t.user_id]
        if t.churned:
            # no events after churn_at: it is the user's very last event
            assert t.churn_at == last[t.user_id]
            assert t.persona in ("lapsing", "new")
        else:
            assert t.churn_at is None
        assert set(t.to_dict()) == {"user_id", "persona", "signup_at", "first_event_at",
                                    "last_event_at", "churned", "churn_at"}
    assert all(t.churned for t in truth if t.persona == "lapsing")


def test_lapsing_users_decline_before_churn() -> None:
    events, truth = generate(users=200, days=60, seed=2,
                             mix={"lapsing": 1.0})
    per_user: dict[str, list[int]] = defaultdict(list)
    for e in events:
        per_user[e["user_id"]].append(_ms(e["ts"]))
    day = 86_400_000
    early = late = 0
    for t in truth:
        assert t.churn_at is not None
        churn = _ms(t.churn_at)
        xs = per_user[t.user_id]
        late += sum(1 for x in xs if churn - 7 * day <= x < churn)
        early += sum(1 for x in xs if churn - 35 * day <= x < churn - 28 * day)
    assert late < 0.5 * early


def test_persona_mix_and_validation() -> None:
    _, truth = generate(users=100, days=10, seed=1, mix={"core": 1, "casual": 1})
    personas = {t.persona for t in truth}
    assert personas == {"core", "casual"}
    with pytest.raises(ValueError, match="unknown persona"):
        generate(users=10, days=5, mix={"zombie": 1.0})


def test_max_events_cap() -> None:
    events, truth = generate(users=50, days=10, seed=3, max_events=123)
    assert len(list(events)) == 123
    assert len(truth) == 50


def test_cli_writes_gz_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ev" / "events.jsonl.gz"
    args = _parse(["--users", "40", "--days", "8", "--out", str(out), "--quiet",
                   "--seed", "4"])
    assert run(args) == 0
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    assert events and all(e["type"] in EVENT_TYPES for e in events)
    truth_path = tmp_path / "ev" / "events.truth.jsonl"
    truths = [json.loads(line) for line in truth_path.read_text().splitlines()]
    assert len(truths) == 40
    summary = capsys.readouterr().out
    assert f"{len(events):,} events" in summary and str(truth_path) in summary


def test_cli_invalid_share_and_max_events(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    truth = tmp_path / "t.jsonl"
    args = _parse(["--users", "30", "--days", "5", "--out", str(out), "--truth", str(truth),
                   "--quiet", "--invalid-share", "0.2", "--max-events", "500"])
    assert run(args) == 0
    lines = out.read_bytes().splitlines()
    good = bad = 0
    for line in lines:
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if all(k in e for k in REQUIRED) and e["type"] in EVENT_TYPES and TS_RE.match(e["ts"]):
            good += 1
        else:
            bad += 1
    assert good == 500
    assert 50 <= bad <= 160
    assert truth.exists()


def test_cli_requires_exactly_one_output() -> None:
    with pytest.raises(UsageError, match="exactly one of --out FILE or --topic TOPIC"):
        run(_parse(["--users", "5"]))
    with pytest.raises(UsageError):
        run(_parse(["--out", "x.jsonl", "--topic", "interactions"]))


def test_default_truth_path() -> None:
    assert default_truth_path("var/events.jsonl.gz") == str(Path("var/events.truth.jsonl"))
    assert default_truth_path("e.jsonl") == "e.truth.jsonl"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # kafka-python's own imports
def test_cli_topic_uses_kafka_producer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    sent: list[tuple[str, bytes | None, bytes]] = []
    config: dict[str, Any] = {}

    class FakeProducer:
        def __init__(self, **kwargs: Any) -> None:
            config.update(kwargs)

        def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> None:
            sent.append((topic, key, value))

        def flush(self) -> None:
            config["flushed"] = True

        def close(self) -> None:
            config["closed"] = True

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    truth = tmp_path / "truth.jsonl"
    args = _parse(["--users", "10", "--days", "3", "--topic", "interactions", "--broker",
                   "h1:9092,h2:9092", "--truth", str(truth), "--quiet"])
    assert run(args) == 0
    assert sent and config["flushed"] and config["closed"]
    assert config["bootstrap_servers"] == ["h1:9092", "h2:9092"] and "linger_ms" in config
    for topic, key, value in sent:
        event = json.loads(value)
        assert topic == "interactions" and key == event["user_id"].encode()
    assert len(truth.read_text().splitlines()) == 10
