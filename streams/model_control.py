"""`engage model list|swap|shadow|promote|rollback`: talk to the running trainer over Kafka.

Commands go to `churn.control`; the trainer answers on the compacted `churn.status` with its
status and the `request_id` it last handled, which is how this waits for the effect.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.topics import TopicNames


def read_status(
    broker: str, timeout_s: float, request_id: str | None = None,
    names: TopicNames | None = None, client: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The newest trainer status (or the first that answers `request_id`)."""
    names = names or TopicNames()
    consumer = KafkaConsumer(
        bootstrap_servers=broker, enable_auto_commit=False, group_id=None,
        consumer_timeout_ms=500, **(client or {}),
    )
    tp = TopicPartition(names.churn_status, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    newest: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in consumer:
                newest = json.loads(message.value)
                if request_id is not None and newest.get("request_id") == request_id:
                    return newest
            end = consumer.end_offsets([tp])[tp]
            if request_id is None and consumer.position(tp) >= end:
                return newest
    finally:
        consumer.close()
    return None if request_id is not None else newest


def send_command(
    broker: str, command: str, model: str | None, names: TopicNames | None = None,
    version: int | None = None, client: Mapping[str, Any] | None = None,
) -> str:
    request_id = uuid.uuid4().hex
    body: dict[str, Any] = {"command": command, "model": model, "request_id": request_id,
                            "issued_at": int(time.time() * 1000)}
    if version is not None:
        body["version"] = version
    producer = KafkaProducer(bootstrap_servers=broker, acks="all", **(client or {}))
    try:
        producer.send((names or TopicNames()).churn_control, key=b"control",
                      value=json.dumps(body).encode()).get(timeout=10)
    finally:
        producer.close()
    return request_id


def _figures(metrics: dict[str, Any]) -> str:
    return "  ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={'—' if v is None else v}"
        for k, v in metrics.items()
    )


def format_status(status: dict[str, Any]) -> str:
    lines = [f"examples: {status.get('examples_by_label', {})}"]
    for role in ("champion", "shadow"):
        model = status.get(role)
        if not model:
            continue
        version = f" v{model['version']}" if model.get("version") else ""
        figures = _figures(model.get("metrics", {}))
        lines.append(f"{role:<9} {model.get('name')}{version}  {figures}")
    comparison = status.get("comparison")
    if comparison:
        lines.append(f"paired on the same {comparison['examples']} examples since the shadow "
                     f"started (shadow better on {comparison['shadow_better_share']}):")
        for role in ("champion", "shadow"):
            side = dict(comparison[role])
            name = side.pop("name")
            lines.append(f"  {role:<9} {name}  {_figures(side)}")
    versions = status.get("versions")
    if versions:
        lines.append("versions: " + ", ".join(
            f"{v['version']} ({v['name']})" for v in versions[:10]
        ) + (" ..." if len(versions) > 10 else ""))
    available = status.get("available")
    if available:
        lines.append("available: " + ", ".join(available))
    if status.get("error"):
        lines.append(f"error: {status['error']}")
    return "\n".join(lines)


def run_model_command(
    broker: str, action: str, name: str | None, timeout_s: float,
    names: TopicNames | None = None, version: int | None = None,
    client: Mapping[str, Any] | None = None,
) -> int:
    """`client`: security settings for kafka-python (streams.kafka_security)."""
    if action == "list":
        status = read_status(broker, timeout_s, names=names, client=client)
        if status is None:
            print("no trainer status yet (is a worker running?)")
            return 1
        print(format_status(status))
        return 0
    request_id = send_command(broker, action, name, names, version, client)
    status = read_status(broker, timeout_s, request_id=request_id, names=names, client=client)
    if status is None:
        print(f"sent {action} {name or ''}; no answer from the trainer within {timeout_s:.0f}s")
        return 1
    print(format_status(status))
    return 1 if status.get("error") else 0
