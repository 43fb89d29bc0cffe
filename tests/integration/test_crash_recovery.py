"""Through the real broker: a worker SIGKILLed three times while it works through a backlog,
and the broker restarted under it, counts every event exactly once and emits exactly the
triggers of users' own histories that `engage replay` emits for the same events (the run
without crashes). Referral credits wait for news from other partitions, so their timing
depends on delivery: each invitee is credited at most once (tests/integration/
test_referrals_live.py checks what they decide)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.topics import ensure_topics
from tests.integration.worker_process import (
    WorkerHandle,
    produce,
    read_topic,
    read_until_counted,
    replayed_history,
    running_worker,
    shortfall_report,
    unique_names,
)
from tests.kafka_fixture import BrokerUnderTest

pytestmark = pytest.mark.kafka

PARTITIONS = 4
# Nudges by churn probability depend on when model versions reach the worker (a race with
# the trainer by design); silence-driven ones, like every other rule, must not.
RULES = """
[triggers.reengagement_nudge]
churn_probability_above = 1.0
"""
CONSUMED = re.compile(r"^engage_events_consumed_total\{[^}]*\} (\S+)$", re.MULTILINE)


def consumed(worker: WorkerHandle) -> float:
    try:
        return sum(float(v) for v in CONSUMED.findall(worker.metrics()))
    except OSError:
        return 0.0


def wait_consumed(worker: WorkerHandle, at_least: float, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while consumed(worker) < at_least:
        assert worker.proc.poll() is None, "the worker died"
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.2)


@pytest.mark.timeout(900)
def test_kills_and_a_broker_restart_change_no_count_and_no_trigger(
    kafka: BrokerUnderTest, tmp_path: Path
) -> None:
    if kafka.local is None:
        pytest.skip("restarting the broker needs the project's own local broker")
    names = unique_names()
    replay = replayed_history(tmp_path, RULES, users=250, days=21, seed=5,
                              partitions=PARTITIONS)
    events, rules = replay.events, replay.rules
    expected = Counter(replay.expected_counts())
    assert replay.summary["events_scored"] == sum(expected.values())
    replay_ids = {t["trigger_id"] for t in replay.triggers
                  if not t["type"].startswith("referral_")}
    assert len(replay_ids) > 300

    ensure_topics(kafka.bootstrap, names, PARTITIONS)
    produce(kafka.bootstrap, names.interactions,
            [(e["user_id"].encode(), json.dumps(e).encode()) for e in events])
    args = ("--idle-advance-seconds", "1000000")  # no wall-clock ticks: event time only
    for run in range(3):
        with running_worker(kafka.bootstrap, names, tmp_path, *args, config=rules,
                            partitions=PARTITIONS, log_name=f"run{run}.log") as worker:
            wait_consumed(worker, 3000 + 2000 * run)  # mid-backlog, in 2000-record batches
            if run == 1:
                kafka.restart()  # the broker goes away under a working worker, and comes back
                wait_consumed(worker, consumed(worker) + 2000)
            os.killpg(worker.proc.pid, signal.SIGKILL)  # no clean shutdown, no final commit
            worker.proc.wait()

    with running_worker(kafka.bootstrap, names, tmp_path, *args, config=rules,
                        partitions=PARTITIONS, log_name="final.log", log_level="info") as worker:
        # a loaded machine slows the last worker down; it is waited for while it scores
        latest = read_until_counted(kafka.bootstrap, names, dict(expected), timeout_s=120,
                                    while_growing_s=360)
        audit = read_topic(
            kafka.bootstrap, names.audit,
            lambda rs: {t.get("trigger_id") for t in rs} >= replay_ids, timeout_s=60,
        )
        audit = [t for t in audit if t.get("schema") == "trigger/v1"]
        seen = consumed(worker)
    counted = {u: r["events_counted"] for u, r in latest.items()}
    assert counted == dict(expected), (
        f"final worker consumed {seen:.0f}; "
        f"{shortfall_report(kafka.bootstrap, names, dict(expected), counted)}; "
        f"see {tmp_path / 'final.log'}"
    )
    worker_ids = {t["trigger_id"] for t in audit}
    offline = {t["trigger_id"]: t for t in replay.triggers}
    def own(t: dict[str, Any]) -> bool:
        return not t["type"].startswith("referral_")

    extra = sorted((t["type"], t["user_id"], t["episode"]) for t in audit
                   if t["trigger_id"] not in replay_ids and own(t))
    lost = sorted((t["type"], t["user_id"], t["episode"]) for i, t in offline.items()
                  if i not in worker_ids and own(t))
    assert extra == []  # nothing a run without crashes would not emit
    assert lost == []  # and nothing lost
    credited = [t["episode"] for t in {t["trigger_id"]: t for t in audit}.values()
                if t["type"] == "referral_converted"]
    assert len(credited) == len(set(credited))
    dead = read_topic(kafka.bootstrap, names.dlq, lambda rs: False, timeout_s=3)
    assert len(dead) == replay.summary["dead_letters"].get("late", 0) == 0
