"""Through the real broker: valid events reach engagement.scores, invalid ones reach
engagement.dlq with their reason, in and out balance exactly, and the live worker agrees with
`engage replay` on every user's score."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from scoring.config import load_config
from scoring.partitioning import partition_for_user
from scoring.timeutil import format_rfc3339_ms, parse_rfc3339_ms
from simulator import generate
from streams.replay import run_replay
from streams.topics import ensure_topics
from tests.integration.worker_process import (
    all_counted,
    produce,
    read_topic,
    read_until_counted,
    running_worker,
    unique_names,
)

pytestmark = pytest.mark.kafka

INVALID: list[tuple[bytes, str]] = [
    (b"{not json", "malformed_json"),
    (b"\xff\xfe\xfd", "malformed_json"),
    (b'["an", "array"]', "not_an_object"),
    (b'{"event_id": "x1", "user_id": "u1", "type": "like"}', "missing_field"),
    (b'{"event_id": "x2", "user_id": 7, "type": "like", "ts": 1767225600000}', "wrong_type"),
    (b'{"event_id": "x3", "user_id": "u1", "type": "teleport", "ts": 1767225600000}',
     "unknown_type"),
    (b'{"event_id": "x4", "user_id": "u1", "type": "like", "ts": "noon"}', "bad_timestamp"),
    (b'{"event_id": "x5", "user_id": "u1", "type": "like", "ts": 4102444800000}',
     "future_timestamp"),
    (b'{"event_id": "x6", "user_id": "u1", "type": "like", "ts": 1767225600000, "pad": "'
     + b"x" * 20_000 + b'"}', "oversized"),
]


def test_scores_dead_letters_balance_and_replay_agreement(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = unique_names()
    stream, _truth = generate(users=40, days=14, seed=11)
    events = list(stream)
    valid = [json.dumps(e).encode() for e in events]
    duplicates = valid[100:105]  # producer retries: the same event_id again
    expected_counted: dict[str, int] = {}
    for e in events:
        expected_counted[e["user_id"]] = expected_counted.get(e["user_id"], 0) + 1
    records: list[tuple[bytes | None, bytes]] = [(json.loads(v)["user_id"].encode(), v)
                                                 for v in valid[:100]]
    records += [(json.loads(v)["user_id"].encode(), v) for v in duplicates]
    records += [(b"u1", bad) for bad, _ in INVALID]
    records += [(json.loads(v)["user_id"].encode(), v) for v in valid[100:]]
    event_file = tmp_path / "events.jsonl"
    event_file.write_bytes(b"\n".join(v for _, v in records) + b"\n")

    ensure_topics(kafka_bootstrap, names, 2)
    with running_worker(kafka_bootstrap, names, tmp_path) as worker:
        produce(kafka_bootstrap, names.interactions, records)

        latest = read_until_counted(kafka_bootstrap, names, expected_counted)
        dead = read_topic(kafka_bootstrap, names.dlq, lambda rs: len(rs) >= len(INVALID))
        assert {u: r["events_counted"] for u, r in latest.items()} == expected_counted
        assert sorted(d["reason"] for d in dead) == sorted(r for _, r in INVALID)
        assert all(d["topic"] == names.interactions and d["offset"] >= 0 for d in dead)
        # in = out + dead letters (duplicates are consumed and counted as such, not twice)
        assert len(records) == sum(expected_counted.values()) + len(duplicates) + len(dead)
        # outputs go as record batches per partition: each user's score records are on the
        # partition Kafka's partitioner gives its key, in the order they were made
        placed = read_topic(kafka_bootstrap, names.scores, all_counted(expected_counted),
                            partition_field="partition")
        assert {r["user_id"] for r in placed} == set(expected_counted)
        assert all(r["partition"] == partition_for_user(r["user_id"], 2) for r in placed)
        for user_id in expected_counted:
            counted = [r["events_counted"] for r in placed if r["user_id"] == user_id]
            assert counted == sorted(counted) and counted[-1] == expected_counted[user_id]
        metrics = worker.metrics()
        assert 'engage_events_consumed_total{outcome="duplicate"' in metrics
        assert "engage_dead_letters_total" in metrics

        # The live worker and replay of the same file give the same scores at one as_of.
        as_of = max(parse_rfc3339_ms(e["ts"]) for e in events) + 3_600_000
        as_of_text = format_rfc3339_ms(as_of)
        replay = run_replay(event_file, load_config(), as_of=as_of, progress=False,
                            partitions=2, churn=False, triggers=False)
        assert replay.summary["dead_letters"] == dict(Counter(r for _, r in INVALID))
        assert replay.summary["duplicates"] == len(duplicates)
        board = worker.get_json("/leaderboard/?n=3")
        top = [row["engagement_score"] for row in board["top"]]
        assert len(top) == 3 and top == sorted(top, reverse=True)
        assert board["users_considered"] == len(expected_counted)
        for user_id in sorted(replay.states):
            offline = msgspec.to_builtins(replay.score_record(user_id, as_of))
            live = worker.get_json(f"/users/{user_id}/?as_of={as_of_text}")
            for key in ("engagement_score", "calibration", "absolute_score", "percentiles",
                        "reference", "dimensions", "windows", "rfm", "streak",
                        "events_counted", "days_since_last_event", "silence_ratio"):
                assert live[key] == offline[key], (user_id, key)

