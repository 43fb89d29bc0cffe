"""What an SRE sees of a worker besides engage's own metrics, on the same registry and port.

- Faust's Prometheus monitor (faust.sensors.prometheus), named `engage_faust_*` whatever the
  app id: per-partition end and committed offsets (their difference is the consumer lag),
  rebalances, commit and send latencies, table operations.
- The process (`process_*`: CPU, resident memory, open files) and the interpreter
  (`python_gc_*`, `python_info`).
- Optional JSON logs (one object per line) for log shippers.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, EventT, StreamT
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from sinks.metrics import Metrics
from streams.worker_command import LOG_FORMATS

FAUST_METRICS_PREFIX = "engage_faust"


class LeanPrometheusMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor without its per-event stream accounting (counters by stream
    and task, the per-event runtime histogram): no dashboard or alert reads them, and they
    cost about 6 % of a busy worker's CPU (py-spy). Per-message offsets (the lag), commits,
    sends and rebalances are kept, and so is the inbound time Faust's slow-stream check reads."""

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


def attach_monitoring(app: faust.App, metrics: Metrics) -> None:
    """Send Faust's sensor events to Prometheus metrics on `metrics.registry`, and add the
    process and interpreter collectors there (once per registry)."""
    faust_metrics = FaustMetrics.create(metrics.registry, FAUST_METRICS_PREFIX)
    app.monitor = LeanPrometheusMonitor(metrics=faust_metrics)
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
