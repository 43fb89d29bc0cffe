"""What an SRE sees of a worker besides engage's own metrics, on the same registry and port.

- Faust's Prometheus monitor (faust.sensors.prometheus), named `engage_faust_*` whatever the
  app id: per-partition end and committed offsets (their difference is the consumer lag),
  rebalances, commit and send latencies, table operations.
- The process (`process_*`: CPU, resident memory, open files) and the interpreter
  (`python_gc_*`, `python_info`).
- Optional JSON logs (one object per line) for log shippers.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from sinks.metrics import Metrics

FAUST_METRICS_PREFIX = "engage_faust"
LOG_FORMATS = ("text", "json")


def attach_monitoring(app: faust.App, metrics: Metrics) -> None:
    """Send Faust's sensor events to Prometheus metrics on `metrics.registry`, and add the
    process and interpreter collectors there (once per registry)."""
    faust_metrics = FaustMetrics.create(metrics.registry, FAUST_METRICS_PREFIX)
    app.monitor = PrometheusMonitor(metrics=faust_metrics)
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
