"""Read a whole Kafka topic once, as it stands now: every record from the earliest retained
offset up to the end offsets taken at the start, then stop (no consumer group, no commits)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition

from streams.cli import UsageError


def topic_values(broker: str, topic: str, idle_timeout_s: float = 30.0) -> Iterator[bytes]:
    """The values of `topic` (null values skipped). Raises UsageError if the topic does not
    exist, or if no record arrives for `idle_timeout_s` before the end is reached."""
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        ids = sorted(consumer.partitions_for_topic(topic))
        partitions = [TopicPartition(topic, p) for p in ids]
        if not partitions:
            raise UsageError(f"topic {topic} does not exist on {broker}")
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > starts[tp]}
        consumer.seek_to_beginning(*partitions)
        last_progress = time.monotonic()
        while pending:
            batch = consumer.poll(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp] and record.value is not None:
                        yield record.value
            if batch:
                last_progress = time.monotonic()
            done = {tp for tp in pending if consumer.position(tp) >= ends[tp]}
            if done:
                consumer.pause(*done)
                pending -= done
            if pending and time.monotonic() - last_progress > idle_timeout_s:
                raise UsageError(f"topic {topic}: no records for {idle_timeout_s:.0f}s before "
                                 "its end offsets were reached")
    finally:
        consumer.close()
