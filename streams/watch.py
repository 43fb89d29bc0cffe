"""`engage watch`: a live console view of triggers (and optionally scores) on Kafka."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer

from scoring.triggers.registry import trigger_types
from streams.topics import TopicNames


def watch(
    broker: str, seconds: float | None = None, show_scores: bool = False,
    names: TopicNames | None = None, client: Mapping[str, Any] | None = None,
) -> int:
    """Print each trigger as it lands, and a score summary every few seconds.
    `client`: security settings for kafka-python (streams.kafka_security)."""
    names = names or TopicNames()
    topics = [names.trigger(t) for t in trigger_types()] + [names.scores, names.dlq]
    consumer = KafkaConsumer(
        *topics, bootstrap_servers=broker, auto_offset_reset="latest",
        enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000, **(client or {}),
    )
    deadline = time.monotonic() + seconds if seconds else None
    by_topic: Counter[str] = Counter()
    latest: dict[str, dict[str, object]] = {}
    last_summary = time.monotonic()
    try:
        while deadline is None or time.monotonic() < deadline:
            for message in consumer:
                by_topic[message.topic] += 1
                value = json.loads(message.value)
                if message.topic == names.scores:
                    latest[value["user_id"]] = value
                    if show_scores:
                        print(_score_line(value), flush=True)
                elif message.topic == names.dlq:
                    print(f"DLQ     {value.get('reason'):<18} {value.get('detail', '')[:80]}",
                          flush=True)
                else:
                    print(_trigger_line(value), flush=True)
                if deadline is not None and time.monotonic() >= deadline:
                    break
            if time.monotonic() - last_summary >= 10 and latest:
                last_summary = time.monotonic()
                top = sorted(latest.values(), key=lambda v: -float(v["engagement_score"]))[:5]  # type: ignore[arg-type]
                print(f"--- {len(latest)} users scored; top 5:", flush=True)
                for row in top:
                    print("    " + _score_line(row), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print("totals: " + ", ".join(f"{t}={n}" for t, n in sorted(by_topic.items())))
    return 0


def _score_line(v: dict[str, object]) -> str:
    churn = v.get("churn_probability")
    churn_text = f"{churn:.2f}" if isinstance(churn, float) else "  - "
    return (f"SCORE   {v['user_id']:<12} score={float(v['engagement_score']):6.2f} "  # type: ignore[arg-type]
            f"tier={v['tier']!s:<7} churn={churn_text} as_of={v['as_of']}")


def _trigger_line(v: dict[str, object]) -> str:
    reason = v.get("reason") or {}
    rule = reason.get("rule", "") if isinstance(reason, dict) else ""
    return (f"TRIGGER {v['type']!s:<20} {v['user_id']!s:<12} variant={v.get('variant')} "
            f"rule={rule} at={v.get('event_time')}")
