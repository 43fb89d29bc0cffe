"""Which topic prefix a console command reads: the one given, else $ENGAGE_TOPIC_PREFIX, else
the unprefixed topics when they exist, else the demo's (`demo.`), so that `engage watch`
and `engage model` find a running `engage demo` without flags."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaConsumer

from streams.topics import TopicNames

DEMO_PREFIX = "demo."


def resolve_prefix(
    broker: str, given: str | None, probe: Callable[[TopicNames], str],
    client: Mapping[str, Any] | None = None,
) -> str:
    """`probe` names the topic whose presence decides (e.g. the audit topic); `client`:
    security settings for kafka-python (streams.kafka_security)."""
    if given is not None:
        return given
    env = os.environ.get("ENGAGE_TOPIC_PREFIX")
    if env is not None:
        return env
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None, **(client or {}))
    try:
        topics = consumer.topics()
    finally:
        consumer.close()
    if probe(TopicNames()) in topics or probe(TopicNames(prefix=DEMO_PREFIX)) not in topics:
        return ""
    print(f"(reading the demo's topics, prefix {DEMO_PREFIX!r}; "
          "set --topic-prefix or ENGAGE_TOPIC_PREFIX to choose)", file=sys.stderr)
    return DEMO_PREFIX
