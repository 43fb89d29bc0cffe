"""The shipped JSON Schemas describe what the code really emits."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from scoring.config import load_config
from simulator import generate
from sinks.metrics import Metrics
from streams.engine_factory import build_engine
from streams.processor import DictStore, InputRecord, ScoringShell
from streams.replay import run_replay
from streams.topics import TopicNames

SCHEMAS = {p.name: json.loads(p.read_text()) for p in
           resources.files("scoring").joinpath("schemas").iterdir() if p.name.endswith(".json")}
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)


Replayed = tuple[list[Any], list[Any], list[Any]]


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], registry=REGISTRY)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    tmp = tmp_path_factory.mktemp("schemas")
    stream, _ = generate(users=60, days=30, seed=8)
    events = list(stream)
    path = tmp / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    snapshot, triggers = tmp / "snap.jsonl", tmp / "trig.jsonl"
    run_replay(path, load_config(), snapshot_path=snapshot, triggers_path=triggers, progress=False)
    read = lambda p: [json.loads(line) for line in Path(p).read_text().splitlines()]  # noqa: E731
    return events, read(snapshot), read(triggers)


def test_events_scores_and_triggers_validate(replayed: Replayed) -> None:
    events, scores, triggers = replayed
    for e in events[:2000]:
        validator("interaction-event.v1.json").validate(e)
    for s in scores:
        validator("engagement-score.v2.json").validate(s)
    kinds = {t["type"] for t in triggers}
    assert {"milestone", "streak", "tier_change"} <= kinds
    for t in triggers:
        validator("trigger.v1.json").validate(t)
        validator(f"trigger.{t['type']}.v1.json").validate(t)
        other = "milestone" if t["type"] != "milestone" else "streak"
        assert not validator(f"trigger.{other}.v1.json").is_valid(t)


def test_dead_letters_validate() -> None:
    config, metrics = load_config(), Metrics()
    engine = build_engine(config, churn=None, on_suppressed=metrics.count_suppressed)
    shell = ScoringShell(config, engine, DictStore(4), TopicNames(), 2, metrics)
    bad = [b"{x", b"\xff\xfe", b"[]", b'{"event_id":"e","user_id":"u","type":"nope","ts":1}']
    result = shell.handle_batch([InputRecord("interactions", 0, i, None, v)
                                 for i, v in enumerate(bad)])
    assert len(result.outbox) == len(bad)
    for record in result.outbox:
        validator("dead-letter.v1.json").validate(json.loads(record.value))


def test_routed_messages_and_leaderboard_records_validate() -> None:
    from scoring.config import config_from_dict
    from scoring.events import Event, Properties
    from scoring.partition_state import PartitionShared

    engine = build_engine(config_from_dict({}), churn=None)
    shared = PartitionShared()
    at = 1_767_225_600_000
    out = engine.apply(None, Event("e1", "ref", "referral", at, 0.0, None,
                                   Properties(target_user_id="friend")), at, shared)
    (invite,) = out.routed
    validator("routed.v1.json").validate(json.loads(json.dumps(
        __import__("msgspec").to_builtins(invite))))
    validator("leaderboards.v1.json").validate({"partition": 0, "boards": shared.boards()})
    assert shared.stored.boards
