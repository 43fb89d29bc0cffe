"""Through the real broker, two workers sharing the population reference over the sketches
topic: every user's calibrated score, percentiles, tier (and why) and reference equal
`engage replay`'s, and so do the tier and ambassador triggers, although the whole history
is produced at once and the workers' partitions run days apart while they work it off."""

from __future__ import annotations

import json
import re
from collections import Counter
from contextlib import ExitStack
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
    WorkerHandle,
    keyed,
    produce,
    read_topic,
    read_until_counted,
    running_worker,
    unique_names,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 4
# Nudges by churn probability depend on when model versions reach a worker (by design);
# everything else must not.
RULES = """
[triggers.reengagement_nudge]
churn_probability_above = 1.0
"""
REFERENCE_TYPES = {"tier_change", "vip_promotion", "ambassador_candidate"}
SAMPLE = re.compile(r"^(engage_[a-z_]+)(?:\{[^}]*\})? (\S+)$", re.MULTILINE)


def metric(worker: WorkerHandle, name: str) -> float:
    return sum(float(v) for n, v in SAMPLE.findall(worker.metrics()) if n == name)


@pytest.mark.timeout(600)
def test_two_workers_score_and_tier_every_user_as_replay_does(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = unique_names()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    stream, _ = generate(users=160, days=21, seed=13)
    events = list(stream)
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    as_of = max(parse_rfc3339_ms(e["ts"]) for e in events) + 3_600_000
    replayed = tmp_path / "triggers.jsonl"
    replay = run_replay(source, load_config(rules), as_of=as_of, triggers_path=replayed,
                        progress=False, partitions=PARTITIONS)
    assert replay.summary["population"]["forced_adoptions"] == 0  # every wait resolved
    assert replay.summary["population"]["events_held"] > 0  # partitions did wait
    expected_ids = {
        t["trigger_id"] for line in replayed.read_text().splitlines()
        if (t := json.loads(line))["type"] in REFERENCE_TYPES
    }
    offline = {u: msgspec.to_builtins(replay.score_record(u, as_of)) for u in replay.states}
    assert {r["calibration"] for r in offline.values()} == {"population"}
    assert len({r["tier"] for r in offline.values()}) >= 3

    ensure_topics(kafka_bootstrap, names, PARTITIONS)
    args = ("--idle-advance-seconds", "1000000", "--reference-wait-seconds", "90")
    with ExitStack() as stack:
        workers = [
            stack.enter_context(running_worker(
                kafka_bootstrap, names, tmp_path, *args, config=rules,
                partitions=PARTITIONS, log_name=f"{name}.log",
            ))
            for name in ("a", "b")
        ]
        for worker in workers:  # both in the group before the history arrives
            worker.wait_json("/readyz/", lambda status, body: status == 200 and len(
                [p for p in body["checks"]["partitions_assigned"] if ".interactions[" in p]
            ) == PARTITIONS // 2, timeout_s=180)
        # Each partition's first record goes first, and is read, before the history: a
        # partition announces itself with its first record, and one whose first record is read
        # only after another partition passed that record's day is not waited for on the days
        # before (a known limit, docs/scoring.md; on a loaded machine one worker can lag the
        # other by days of a backlog). Per partition the order is unchanged.
        firsts = {partition_for_user(e["user_id"], PARTITIONS): e for e in reversed(events)}
        opening = list(firsts.values())
        produce(kafka_bootstrap, names.interactions, keyed(opening))
        read_until_counted(kafka_bootstrap, names,
                           dict(Counter(e["user_id"] for e in opening)), timeout_s=120)
        rest = [e for e in events if not any(e is f for f in opening)]
        produce(kafka_bootstrap, names.interactions, keyed(rest))
        counted = read_until_counted(
            kafka_bootstrap, names, dict(Counter(e["user_id"] for e in events)), timeout_s=240
        )
        assert {u: r["events_counted"] for u, r in counted.items()} == {
            u: s.events for u, s in replay.states.items()
        }
        audit = read_topic(kafka_bootstrap, names.audit,
                           lambda rs: {t["trigger_id"] for t in rs} >= expected_ids,
                           timeout_s=60)
        at = format_rfc3339_ms(as_of)
        for i, (user_id, record) in enumerate(sorted(offline.items())):
            # 503 while the owner takes the partition over (a late rebalance): ask again
            live = workers[i % 2].wait_json(f"/users/{user_id}/?as_of={at}",
                                            lambda status, _body: status == 200, timeout_s=60)
            for key in ("engagement_score", "calibration", "percentiles", "reference", "tier",
                        "tier_reason", "absolute_score", "satisfaction"):
                assert live[key] == record[key], (user_id, key)
        assert sum(metric(w, "engage_reference_forced_total") for w in workers) == 0
        assert sum(metric(w, "engage_population_snapshots_total") for w in workers) > 0
    live_ids = {t["trigger_id"] for t in audit if t["type"] in REFERENCE_TYPES}
    assert live_ids == expected_ids
    assert len(expected_ids) > 100
