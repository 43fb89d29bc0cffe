"""Example trigger subscriber for platform teams.

Reads trigger records from the `triggers.<type>` topics and prints one line per trigger.
Copy it and replace `handle()` with your own action (send a push, open a ticket, ...).

    python examples/subscriber.py --broker 127.0.0.1:9092 --types milestone,streak

Three things every subscriber should do, shown here:

1. Dedupe on `trigger_id`. Delivery is at-least-once: after a restart or a rebalance the same
   trigger can arrive again. The id is deterministic, so remembering recent ids is enough.
2. Skip expired triggers. A trigger past its `expires_at` is no longer worth acting on
   (e.g. after a long outage, the backlog is stale).
3. Honour `variant`. The `triggers.<type>` topics carry treatment triggers only; the hold-out
   ("control") group of each experiment is published to `triggers.audit` alone, next to the
   treatment ones, for whoever measures uplift. Never act on a control trigger.

Needs only kafka-python (`pip install kafka-python`).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer

# Every trigger type has its own topic `triggers.<type>`; without --types this subscribes
# to all of them by pattern, so a type added later is picked up without an edit here.
NOT_A_TYPE = ("audit", "webhook")  # triggers.audit, triggers.webhook.dlq


def all_types_pattern(prefix: str) -> str:
    quoted = re.escape(prefix + "triggers.")
    return f"^{quoted}(?!(?:{'|'.join(NOT_A_TYPE)})\\b)[a-z0-9_]+$"


class RecentIds:
    """A bounded set of recently seen ids: the oldest is forgotten when full (an LRU)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, trigger_id: str) -> bool:
        """True if the id was seen before; remembers it either way."""
        if trigger_id in self._ids:
            self._ids.move_to_end(trigger_id)
            return True
        self._ids[trigger_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False


def is_expired(trigger: dict[str, Any]) -> bool:
    """Timestamps are RFC 3339 in UTC, like 2026-01-05T13:04:05.123Z."""
    expires_at = datetime.fromisoformat(trigger["expires_at"].replace("Z", "+00:00"))
    return expires_at <= datetime.now(UTC)


def handle(trigger: dict[str, Any]) -> None:
    """Your action goes here. This example only prints. (Should a control trigger reach you,
    e.g. when reading triggers.audit, record it for uplift but do not act on it.)"""
    print(
        f"{trigger['emitted_at']}  {trigger['type']:<22} user={trigger['user_id']:<12} "
        f"variant={trigger['variant']:<9} rule={trigger['reason']['rule']} "
        f"score={trigger.get('score')} tier={trigger.get('tier')} "
        f"churn={trigger.get('churn_probability')}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--broker", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--types", default="",
                        help="comma-separated trigger types (default: every triggers.<type> "
                             "topic, found by pattern)")
    parser.add_argument("--topic-prefix", default="", help="e.g. 't123.' if topics are prefixed")
    parser.add_argument("--group-id", default="example-subscriber",
                        help="consumer group: instances sharing it split the partitions")
    parser.add_argument("--from-beginning", action="store_true",
                        help="a new group starts at the oldest trigger, not the newest")
    args = parser.parse_args()

    topics = [f"{args.topic_prefix}triggers.{t.strip()}" for t in args.types.split(",") if t]
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=args.broker,
        group_id=args.group_id,
        # Where a group with no committed offset starts. Existing groups resume where they were.
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        # Offsets are committed in the background every few seconds. A crash can replay the
        # last few triggers: that is what the dedupe below is for.
        enable_auto_commit=True,
    )
    if not topics:
        consumer.subscribe(pattern=all_types_pattern(args.topic_prefix))
    recent = RecentIds()
    print(f"listening on {', '.join(topics) or 'every trigger topic'} (Ctrl-C to stop)",
          flush=True)
    try:
        for record in consumer:
            try:
                trigger = json.loads(record.value)
            except ValueError:
                print(f"skipping unreadable record at {record.topic}/{record.partition}"
                      f"@{record.offset}", flush=True)
                continue
            if recent.seen(trigger["trigger_id"]):
                continue  # a redelivery: already handled
            if is_expired(trigger):
                continue  # too late to act on
            handle(trigger)
    except KeyboardInterrupt:
        pass  # Ctrl-C: fall through to a clean close
    finally:
        consumer.close()  # commits the current offsets and leaves the group promptly
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
