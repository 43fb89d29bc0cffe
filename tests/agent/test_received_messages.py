"""Faust's per-message metrics, exported from its monitor's counts at scrape time
(streams/monitoring.py), under the names and types Faust's own monitor gives them."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.monitor import Monitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.monitoring import FAUST_METRICS_PREFIX, ReceivedMessages


def test_messages_in_and_out_show_at_the_next_scrape() -> None:
    registry, monitor = CollectorRegistry(), Monitor()
    registry.register(ReceivedMessages(monitor, FAUST_METRICS_PREFIX))
    inputs, other = TP("interactions", 1), TP("ticks", 0)
    for tp, offset in ((inputs, 7), (inputs, 8), (other, 3)):
        monitor.on_message_in(tp, offset, SimpleNamespace(time_in=None))
    monitor.on_message_out(inputs, 7, SimpleNamespace(time_in=None))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"{FAUST_METRICS_PREFIX}_{name}", labels)

    assert sample("messages_received_total") == 3
    assert sample("active_messages") == 2
    assert sample("messages_received_per_topic_total", topic="interactions") == 2
    assert sample("messages_received_per_topic_total", topic="ticks") == 1
    assert sample("messages_received_per_topics_partition",
                  topic="interactions", partition="1") == 8
    assert sample("messages_received_per_topics_partition", topic="ticks", partition="0") == 3
