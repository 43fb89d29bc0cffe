"""`engage uplift --from-kafka` reads triggers.audit and the interactions topic of a real
broker and reports exactly what it reports from the same records in files."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from streams.replay import open_lines
from streams.topics import TopicNames, delete_topics, ensure_topics, topic_specs
from tests.growth_helpers import engage_json, engage_misuse, exact_uplift_history

pytestmark = pytest.mark.kafka


@pytest.fixture
def names(kafka_bootstrap: str) -> Iterator[TopicNames]:
    names = TopicNames(prefix=f"up{uuid.uuid4().hex[:8]}.")
    ensure_topics(kafka_bootstrap, names, partitions=3)
    try:
        yield names
    finally:
        delete_topics(kafka_bootstrap, [s.name for s in topic_specs(names, 3)])


def _produce(bootstrap: str, topic: str, path: Path) -> int:
    """Each line of the file as one record, keyed by its user as the worker keys them."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        with open_lines(path) as fh:
            lines = [line.strip() for line in fh if line.strip()]
        for line in lines:
            producer.send(topic, key=str(json.loads(line).get("user_id")).encode(), value=line)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    return len(lines)


def test_from_kafka_matches_the_files(
    tmp_path: Path, kafka_bootstrap: str, names: TopicNames,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    triggers, events = exact_uplift_history(tmp_path)
    assert _produce(kafka_bootstrap, names.audit, triggers) == 11
    assert _produce(kafka_bootstrap, names.interactions, events) == 11
    outcomes = ["--outcome", "returned", "purchase", "--json"]
    from_files = engage_json(["uplift", "--triggers", str(triggers), "--events", str(events),
                              *outcomes], capsys)
    monkeypatch.setenv("ENGAGE_TOPIC_PREFIX", names.prefix)  # the worker's convention
    from_topics = engage_json(["uplift", "--from-kafka", "--broker", kafka_bootstrap,
                               *outcomes], capsys)
    assert from_topics == from_files
    win_back = next(r for r in from_topics if (r["type"], r["outcome"]) == ("win_back",
                                                                              "returned"))
    assert (win_back["treatment"]["users"], win_back["control"]["users"]) == (4, 4)


def test_a_missing_topic_is_a_usage_error(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"absent{uuid.uuid4().hex[:8]}."
    err = engage_misuse(["uplift", "--from-kafka", "--broker", kafka_bootstrap,
                         "--topic-prefix", prefix], capsys)
    assert f"topic {prefix}triggers.audit does not exist on {kafka_bootstrap}" in err
