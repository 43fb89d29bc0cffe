"""Through the real broker, with several workers: one added and one killed while events
flow. Every user is counted as replay counts them, every lookup answers from any worker
(routed to the owner), and workers forget the users of partitions they gave up."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest

from scoring.config import load_config
from scoring.leaderboards import merge_boards
from simulator import generate
from streams.replay import run_replay
from streams.topics import ensure_topics
from tests.integration.worker_process import (
    WorkerHandle,
    produce,
    read_until_counted,
    running_worker,
    shortfall_report,
    unique_names,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 4
TRACKED = re.compile(r"^engage_users_tracked (\S+)$", re.MULTILINE)


def tracked(worker: WorkerHandle) -> int:
    match = TRACKED.search(worker.metrics())
    return int(float(match.group(1))) if match else -1


def wait_for(condition, timeout_s: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


@pytest.mark.timeout(900)
def test_workers_added_and_killed_count_like_replay_and_answer_every_lookup(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = unique_names()
    stream, _ = generate(users=120, days=14, seed=21)
    events = list(stream)
    half = len(events) // 2
    keyed = [(e["user_id"].encode(), json.dumps(e).encode()) for e in events]
    expected_half = Counter(e["user_id"] for e in events[:half])
    expected = Counter(e["user_id"] for e in events)
    ensure_topics(kafka_bootstrap, names, PARTITIONS)
    args = ("--idle-advance-seconds", "1000000", "--log-level", "info")

    def worker(stack: ExitStack, name: str) -> WorkerHandle:
        return stack.enter_context(running_worker(
            kafka_bootstrap, names, tmp_path, *args, partitions=PARTITIONS,
            log_name=f"{name}.log",
        ))

    with ExitStack() as stack:
        a, b = worker(stack, "a"), worker(stack, "b")
        produce(kafka_bootstrap, names.interactions, keyed[:half])
        read_until_counted(kafka_bootstrap, names, dict(expected_half), timeout_s=180)
        c = worker(stack, "c")  # one added...
        c.wait_json("/readyz/", lambda status, _body: status == 200, timeout_s=180)
        os.killpg(a.proc.pid, signal.SIGKILL)  # ...and one killed
        a.proc.wait()
        produce(kafka_bootstrap, names.interactions, keyed[half:])
        latest = read_until_counted(kafka_bootstrap, names, dict(expected), timeout_s=120,
                                    while_growing_s=360)
        counted = {u: r["events_counted"] for u, r in latest.items()}
        assert counted == dict(expected), shortfall_report(
            kafka_bootstrap, names, dict(expected), counted)
        for live in (b, c):  # both answer for everyone, once the group has settled
            live.wait_json("/readyz/", lambda status, _body: status == 200, timeout_s=180)
            for user, n in list(expected.items())[:3]:
                live.wait_json(f"/users/{user}/", lambda s, body, n=n: s == 200
                               and body.get("events_counted") == n, timeout_s=120)
        answers: Counter[str] = Counter()
        for live in (b, c):
            for user, n in expected.items():
                status, record = live.poll_json(f"/users/{user}/")
                right = status == 200 and record.get("events_counted") == n
                answers["right" if right else f"{status} {record}"] += 1
        assert answers == Counter({"right": 2 * len(expected)})
        # cluster-wide leaderboards: the same top-N from either worker, as replay ranks them
        source = tmp_path / "events.jsonl"
        source.write_text("".join(json.dumps(e) + "\n" for e in events))
        offline = run_replay(source, load_config(), progress=False, partitions=PARTITIONS,
                             churn=False)
        for period, by in (("all", "composite"), ("month", "social"), ("week", "composite")):
            label, top = merge_boards(offline.boards.values(), period, by, 10)
            want = {"period_start": label,
                    "top": [{"rank": i + 1, "user_id": u, "points": v}
                            for i, (u, v) in enumerate(top)]}
            for live in (b, c):
                live.wait_json(
                    f"/leaderboards/{period}/?by={by}&n=10",
                    lambda s, body, want=want: s == 200 and {
                        k: body[k] for k in ("period_start", "top")} == want,
                    timeout_s=60,
                )
        wait_for(lambda: tracked(b) + tracked(c) == len(expected), timeout_s=60)
