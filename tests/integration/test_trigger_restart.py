"""Through the real broker: a worker killed mid-stream and restarted never issues a second
trigger (a new trigger_id) for an episode already served, and loses or double-counts no event."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from streams.topics import ensure_topics
from tests.integration.worker_process import (
    kill_worker_partway,
    produce,
    read_topic,
    read_until_counted,
    running_worker,
    shortfall_report,
    simulated_records,
    unique_names,
)

pytestmark = pytest.mark.kafka


def test_no_second_trigger_after_a_crash_and_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    keyed, expected = simulated_records(users=50, days=21, seed=9)
    cut = int(len(keyed) * 0.6)

    ensure_topics(kafka_bootstrap, names, 2)
    kill_worker_partway(kafka_bootstrap, names, tmp_path, keyed[:cut])
    first_run = read_topic(kafka_bootstrap, names.audit, lambda rs: False, timeout_s=3)

    with running_worker(kafka_bootstrap, names, tmp_path, log_name="second.log") as worker:
        produce(kafka_bootstrap, names.interactions, keyed[cut:])

        latest = read_until_counted(kafka_bootstrap, names, expected, timeout_s=180)
        counted = {u: r["events_counted"] for u, r in latest.items()}
        assert counted == expected, shortfall_report(
            kafka_bootstrap, names, expected, counted, worker)
        time.sleep(2.0)
        audit = read_topic(kafka_bootstrap, names.audit, lambda rs: False, timeout_s=3)

    assert len(first_run) >= 20 and len(audit) > len(first_run)
    ids_by_episode: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for t in audit:
        ids_by_episode[(t["user_id"], t["type"], t["episode"])].add(t["trigger_id"])
    assert all(len(ids) == 1 for ids in ids_by_episode.values())
    milestones = [t for t in audit if t["type"] == "milestone"]
    badges = {(t["user_id"], t["episode"]) for t in milestones}
    assert len({t["trigger_id"] for t in milestones}) == len(badges)
    dead = read_topic(kafka_bootstrap, names.dlq, lambda rs: False, timeout_s=3)
    assert [d for d in dead if d["reason"] != "late"] == []
