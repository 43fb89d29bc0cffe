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
    input_progress,
    produce,
    read_topic,
    read_until_counted,
    running_worker,
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


@pytest.mark.xfail(
    strict=False,
    reason="issue #9 open: after a worker is killed, counts can fall short (a stalled "
    "input partition, or events lost at a handover); docs/guarantees.md, known defects",
)
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
        short = [(u, n - counted.get(u, 0)) for u, n in expected.items() if counted.get(u) != n]
        if counted != dict(expected):
            progress = input_progress(kafka_bootstrap, names)
            stalled = {p: ce for p, ce in progress.items() if ce[0] < ce[1]}
            if stalled and not any(counted.get(u, 0) > n for u, n in expected.items()):
                # the known open defect of issue #9 (see test_crash_recovery): an input
                # partition that stops being fetched at its committed offset after a worker
                # is killed; only that case is excused, any other mismatch fails below
                pytest.xfail(f"input partition stalled at its committed offset: {stalled}")
            dead = read_topic(kafka_bootstrap, names.dlq, lambda rs: False, timeout_s=3)
            raise AssertionError(
                f"short: {short}; "
                f"(committed, end) per input partition: {progress}; "
                f"dead letters: {[(d.get('reason'), d.get('detail')) for d in dead][:10]}"
            )
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
