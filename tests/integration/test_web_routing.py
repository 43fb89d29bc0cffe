"""Two workers on different addresses (127.0.0.2 and 127.0.0.3, both loopback): each listens on
its own bind address and advertises it, so a user lookup sent to either worker is answered,
forwarded by Faust to the worker that owns the user's partition when that is the other one."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.topics import ensure_topics
from tests.integration.worker_process import (
    WorkerHandle,
    produce,
    read_until_counted,
    running_worker,
    simulated_records,
    unique_names,
)

pytestmark = pytest.mark.kafka


def input_partitions(worker: WorkerHandle, topic: str) -> list[str]:
    """The input partitions /readyz/ says the worker holds (it answers 503 until ready)."""
    url = f"http://{worker.host}:{worker.web_port}/readyz/"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    except OSError:  # still starting
        return []
    held = body["checks"]["partitions_assigned"]
    return sorted(tp[len(topic) + 1:-1] for tp in held if tp.startswith(f"{topic}["))


def lookups(worker: WorkerHandle, users: list[str]) -> dict[str, Any]:
    """Each user's `events_counted` as the worker answers it; (status, body) when it does not
    answer 200 (a 404 while the owner has not stored the user yet, or a wrong route)."""
    answers: dict[str, Any] = {}
    for u in users:
        status, body = worker.poll_json(f"/users/{u}/")
        answers[u] = body.get("events_counted") if status == 200 and body else (status, body)
    return answers


def test_user_lookups_route_between_workers_on_different_hosts(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = unique_names()
    records, counted = simulated_records(users=24, days=5, seed=3)
    users = sorted(counted)
    ensure_topics(kafka_bootstrap, names, 2)
    with (
        running_worker(kafka_bootstrap, names, tmp_path / "a", bind="127.0.0.2",
                       log_level="info") as a,
        running_worker(kafka_bootstrap, names, tmp_path / "b", bind="127.0.0.3",
                       log_level="info") as b,
    ):
        # Until the group has settled with one input partition on each worker.
        deadline = time.monotonic() + 90
        while True:
            held = [input_partitions(a, names.interactions),
                    input_partitions(b, names.interactions)]
            if sorted(held) == [["0"], ["1"]] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sorted(held) == [["0"], ["1"]], held
        produce(kafka_bootstrap, names.interactions, records)
        scored = read_until_counted(kafka_bootstrap, names, counted)
        assert {u: r["events_counted"] for u, r in scored.items()} == counted, (
            "scores short (worker logs: a/worker.log, b/worker.log)",
            [input_partitions(a, names.interactions), input_partitions(b, names.interactions)])
        # Every lookup, sent to either worker, answers with the owner's state. A score record
        # can reach Kafka a moment before its batch's state is stored, so ask until it has.
        deadline = time.monotonic() + 60
        while True:
            answers = [lookups(a, users), lookups(b, users)]
            if answers == [counted, counted] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert answers == [counted, counted], (
            [{u: v for u, v in got.items() if v != counted[u]} for got in answers],
            [input_partitions(a, names.interactions), input_partitions(b, names.interactions)])
        # every state stored (above): each worker's leaderboard holds its own partition's users
        considered = [a.get_json("/leaderboard/?n=1")["users_considered"],
                      b.get_json("/leaderboard/?n=1")["users_considered"]]
        assert min(considered) > 0 and sum(considered) == len(users), considered
        # The metrics listen on the bind address too, not on 127.0.0.1.
        assert "engage_events_consumed_total" in a.metrics()
