"""What Faust's consumer and the aiokafka consumer under it hold for one input partition.

Logged when a partition stalls (records waiting, nothing read): enough to tell a paused
partition from a lost fetch position, a dropped read offset or a starved stream. It reads
private attributes of both libraries, so every lookup is guarded: a missing one reads
"unknown" rather than failing the health check that asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faust.types import TP

UNKNOWN = "unknown"


def _probe(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as exc:  # private attributes move between releases
        return f"{UNKNOWN} ({type(exc).__name__})"


def _aiokafka_partition(consumer: Any, tp: TP) -> dict[str, Any]:
    from aiokafka import TopicPartition

    inner = consumer._thread._ensure_consumer()
    assignment = inner._subscription.subscription.assignment
    state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
    if state is None:
        return {"assigned": False}
    return {
        "assigned": True,
        "paused": state.paused,
        "status": str(state._status),
        "position": state._position if state.has_valid_position else None,
        "highwater": state.highwater,
        # a fetch result aiokafka holds for Faust: none is fetched again until it is taken
        "fetch_records_buffered": next(
            (type(held).__name__ for t, held in getattr(inner._fetcher, "_records", {}).items()
             if (t.topic, t.partition) == (tp.topic, tp.partition)), None),
    }


def describe_partition(app: Any, tp: TP) -> dict[str, Any]:
    """Faust's and aiokafka's view of one partition, for a stall report."""
    consumer = app.consumer
    return {
        "faust_paused": _probe(lambda: tp in consumer._paused_partitions),
        "faust_active": _probe(lambda: tp in (consumer._active_partitions or set())),
        # taken out of the fetch while its stream buffer is full, back when it drains
        "faust_buffered": _probe(lambda: tp in consumer._buffered_partitions),
        "flow_active": _probe(lambda: consumer.flow_active),
        "flow_control_active": _probe(lambda: app.flow_control.is_active()),
        "read_offset": _probe(lambda: consumer._read_offset.get(tp)),
        "committed": _probe(lambda: consumer._committed_offset.get(tp)),
        "highwater": _probe(lambda: consumer.highwater(tp)),
        "acked_pending": _probe(lambda: len(consumer._acked.get(tp, ()))),
        "aiokafka": _probe(lambda: _aiokafka_partition(consumer, tp)),
    }
