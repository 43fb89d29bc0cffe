"""Through the real broker: the RocksDB store (rocksdict) keeps users across a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator import generate
from streams.topics import ensure_topics
from tests.integration.worker_process import (
    produce,
    read_until_counted,
    running_worker,
    unique_names,
)

pytestmark = pytest.mark.kafka


def test_rocksdb_state_survives_a_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    stream, _ = generate(users=15, days=5, seed=21)
    events = list(stream)
    expected: dict[str, int] = {}
    for e in events:
        expected[e["user_id"]] = expected.get(e["user_id"], 0) + 1
    ensure_topics(kafka_bootstrap, names, 2)
    with running_worker(kafka_bootstrap, names, tmp_path, "--store", "rocksdb") as worker:
        produce(kafka_bootstrap, names.interactions,
                [(e["user_id"].encode(), json.dumps(e).encode()) for e in events])
        latest = read_until_counted(kafka_bootstrap, names, expected)
        assert {u: r["events_counted"] for u, r in latest.items()} == expected
        before = {u: worker.get_json(f"/users/{u}/?as_of=1767830400000") for u in expected}
    assert list((tmp_path / "data").rglob("*.db"))  # the tables live in RocksDB files
    with running_worker(kafka_bootstrap, names, tmp_path, "--store", "rocksdb") as worker:
        for user_id, record in before.items():
            after = worker.get_json(f"/users/{user_id}/?as_of=1767830400000", timeout_s=60)
            assert after["events_counted"] == record["events_counted"]
            assert after["engagement_score"] == record["engagement_score"]
