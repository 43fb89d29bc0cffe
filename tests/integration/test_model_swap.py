"""Through the real broker: swap the churn model while events flow. No event is lost, a new
signed version is published, and later predictions carry the new model."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from scoring.churn.artifacts import read_metadata
from scoring.churn.layout import FEATURE_NAMES
from simulator import generate
from streams.cli import main
from streams.model_control import read_status, send_command
from streams.topics import TopicNames, ensure_topics
from tests.integration.worker_process import (
    produce,
    read_until_counted,
    running_worker,
    unique_names,
)

pytestmark = pytest.mark.kafka

RULES = """
[churn]
horizon_days = 2.0
publish_every_examples = 10
publish_every_seconds = 1.0
"""


def model_versions(bootstrap: str, names: TopicNames) -> list[dict]:  # type: ignore[type-arg]
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    tp = TopicPartition(names.churn_models, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    try:
        return [read_metadata(m.value) for m in consumer]
    finally:
        consumer.close()


def wait_for(condition, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def keyed(events: list[dict]) -> list[tuple[bytes | None, bytes]]:  # type: ignore[type-arg]
    return [(e["user_id"].encode(), json.dumps(e).encode()) for e in events]


def test_swap_while_events_flow(kafka_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    stream, _ = generate(users=60, days=20, seed=5)
    events = list(stream)
    first, during, after = (
        events[: len(events) // 2],
        events[len(events) // 2 : -400],
        events[-400:],
    )
    expected: dict[str, int] = {}
    for e in events:
        expected[e["user_id"]] = expected.get(e["user_id"], 0) + 1

    ensure_topics(kafka_bootstrap, names, 2)
    with running_worker(kafka_bootstrap, names, tmp_path, config=rules) as worker:
        produce(kafka_bootstrap, names.interactions, keyed(first))
        wait_for(lambda: any(v["name"] == "lifetime"  # the default champion
                             for v in model_versions(kafka_bootstrap, names)))

        flowing = threading.Thread(
            target=produce, args=(kafka_bootstrap, names.interactions, keyed(during))
        )
        flowing.start()
        request_id = send_command(kafka_bootstrap, "swap", "hoeffding", names)
        status = read_status(kafka_bootstrap, 60, request_id=request_id, names=names)
        flowing.join()
        assert status is not None and status["error"] is None
        assert status["champion"]["name"] == "hoeffding"
        wait_for(lambda: 'model="hoeffding"' in worker.metrics())  # the predictor loaded it

        produce(kafka_bootstrap, names.interactions, keyed(after))

        latest = read_until_counted(kafka_bootstrap, names, expected)
        assert {u: r["events_counted"] for u, r in latest.items()} == expected  # nothing lost

        versions = model_versions(kafka_bootstrap, names)
        swapped = [v for v in versions if v["name"] == "hoeffding"]
        before = [v for v in versions if v["name"] == "lifetime"]
        assert swapped and before
        assert min(v["version"] for v in swapped) > max(v["version"] for v in before)
        late_users = {e["user_id"] for e in after}
        tags = {latest[u]["churn_model"].split("@")[0] for u in late_users}
        assert tags == {"hoeffding"}
        assert all(latest[u]["churn_probability"] is not None for u in late_users)

        # A challenger: shadowed side by side with the champion, then promoted, via the CLI.
        prefix = ["--broker", kafka_bootstrap, "--topic-prefix", names.prefix, "--timeout", "60"]
        assert main(["model", "shadow", "logreg", *prefix]) == 0
        # observed long before the stream's time: released (learned) as they arrive
        produce(kafka_bootstrap, names.churn_examples, [
            (b"u", json.dumps({"features": dict.fromkeys(FEATURE_NAMES, 1.0), "label": i % 2,
                               "user_id": "u", "observed_at": f"2020-01-01T00:00:{i:02d}.000Z",
                               "resolved_at": "2020-01-02T00:00:00.000Z"}).encode())
            for i in range(20)
        ])
        wait_for(lambda: (read_status(kafka_bootstrap, 10, names=names) or {}).get(
            "shadow", {}).get("metrics", {}).get("validated", 0) >= 20)
        status = read_status(kafka_bootstrap, 10, names=names)
        assert status is not None
        assert status["champion"]["metrics"]["validated"] >= 20  # same examples, both models
        assert main(["model", "promote", *prefix]) == 0
        status = read_status(kafka_bootstrap, 10, names=names)
        assert status is not None and status["champion"]["name"] == "logreg"
        assert status["shadow"] is None
        assert main(["model", "list", *prefix]) == 0


class _RunsCode:
    """Unpickling this creates a file: proof that an artifact's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_production_worker_refuses_an_artifact_signed_with_the_dev_key(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from scoring.churn.artifacts import sign_artifact
    from scoring.churn.config import DEV_SIGNING_KEY

    names = unique_names()
    marker = tmp_path / "forged-artifact-ran"
    forged = sign_artifact(
        _RunsCode(marker), {"name": "logreg", "version": 10**15}, DEV_SIGNING_KEY.encode()
    )
    ensure_topics(kafka_bootstrap, names, 2)
    with running_worker(kafka_bootstrap, names, tmp_path) as worker:  # signs with its own key
        produce(kafka_bootstrap, names.churn_models, [(b"champion", forged)])
        wait_for(lambda: 'engage_churn_model_artifacts_rejected_total{reason="bad_signature"} 1.0'
                 in worker.metrics())
        assert 'engage_churn_model_version{' not in worker.metrics()  # nothing loaded
    assert not marker.exists()
