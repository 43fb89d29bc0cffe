"""What an SRE sees of a worker besides engage's own metrics, on the same registry and port.

- Faust's Prometheus monitor (faust.sensors.prometheus), named `engage_faust_*` whatever the
  app id: per-partition end and committed offsets (their difference is the consumer lag),
  rebalances, commit and send latencies, table writes.
- The process (`process_*`: CPU, resident memory, open files) and the interpreter
  (`python_gc_*`, `python_info`).
- Optional JSON logs (one object per line) for log shippers.
"""

from __future__ import annotations

from collections.abc import Iterator
from time import monotonic
from typing import Any

import faust
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, EventT, StreamT
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sinks.metrics import Metrics
from streams.worker_command import LOG_FORMATS

FAUST_METRICS_PREFIX = "engage_faust"


class LeanPrometheusMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor without its per-event stream accounting (counters by stream
    and task, the per-event runtime histogram, table reads by key): no dashboard or alert
    reads them, and they cost about 6 % of a busy worker's CPU (py-spy). Per-message offsets
    (the lag), commits, sends and rebalances are kept, and so is the inbound time Faust's
    slow-stream check reads. Per-partition series are looked up once, not per message (label
    lookups were another 3 % of a busy worker). The per-message counts (messages received,
    in all, by topic and by partition's read offset; messages active) are read from Faust's
    own bookkeeping when scraped (`ReceivedMessages`), not moved on every record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._series: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, **labels: Any) -> Any:
        """`metric.labels(**labels)`, looked up once per label set."""
        key = (id(metric), *labels.values())
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(**labels)
        return child

    def _clear_partition_related_metrics(self) -> None:
        """A rebalance removes the per-partition series; the children looked up for them go
        too (setting a removed child exports nothing: the lag would vanish for good)."""
        super()._clear_partition_related_metrics()
        self._series.clear()

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        Monitor.on_message_in(self, tp, offset, message)  # what ReceivedMessages exports

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        Monitor.on_message_out(self, tp, offset, message)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        """Asked for every record with its partition's end offset, which moves once per
        fetch: the gauge is set when it moved (Faust's own record of the offset says)."""
        if self.tp_end_offsets.get(tp) != offset:
            Monitor.track_tp_end_offset(self, tp, offset)
            self._child(self._metrics.topic_partition_end_offset,
                        topic=tp.topic, partition=tp.partition).set(offset)

    def on_table_get(self, table: Any, key: Any) -> None:
        return None

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        self.events_total += 1
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        return None


class ReceivedMessages(Collector):
    """Faust's per-message metrics, under the names and types Faust gives them, read from
    its monitor's counts at each scrape."""

    def __init__(self, monitor: Monitor, prefix: str) -> None:
        self.monitor = monitor
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        monitor, prefix = self.monitor, self.prefix
        received = CounterMetricFamily(f"{prefix}_messages_received", "Total messages received")
        received.add_metric([], monitor.messages_received_total)
        active = GaugeMetricFamily(f"{prefix}_active_messages", "Total active messages")
        active.add_metric([], monitor.messages_active)
        by_topic = CounterMetricFamily(f"{prefix}_messages_received_per_topic",
                                       "Messages received per topic", labels=["topic"])
        for topic, count in list(monitor.messages_received_by_topic.items()):
            by_topic.add_metric([topic], count)
        offsets = GaugeMetricFamily(f"{prefix}_messages_received_per_topics_partition",
                                    "Messages received per topic/partition",
                                    labels=["topic", "partition"])
        for tp, offset in list(monitor.tp_read_offsets.items()):
            offsets.add_metric([tp.topic, str(tp.partition)], offset)
        yield from (received, active, by_topic, offsets)


def attach_monitoring(app: faust.App, metrics: Metrics) -> None:
    """Send Faust's sensor events to Prometheus metrics on `metrics.registry`, and add the
    process and interpreter collectors there (once per registry)."""
    registry = metrics.registry
    faust_metrics = FaustMetrics.create(registry, FAUST_METRICS_PREFIX)
    for moved_per_message in (faust_metrics.messages_received, faust_metrics.active_messages,
                              faust_metrics.messages_received_per_topics,
                              faust_metrics.messages_received_per_topics_partition):
        registry.unregister(moved_per_message)
    app.monitor = LeanPrometheusMonitor(metrics=faust_metrics)
    registry.register(ReceivedMessages(app.monitor, FAUST_METRICS_PREFIX))
    ProcessCollector(registry=metrics.registry)
    PlatformCollector(registry=metrics.registry)
    GCCollector(registry=metrics.registry)


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """A logging.config dict for Faust's worker: None keeps Faust's own (coloured) text."""
    if log_format == "text":
        return None
    if log_format != "json":
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
