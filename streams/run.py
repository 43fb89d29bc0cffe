"""Starting the worker: topics first, then metrics, then the Faust worker loop."""

from __future__ import annotations

import logging

from faust.worker import Worker

from scoring.config import EngageConfig
from sinks.metrics import Metrics
from streams.settings import WorkerSettings
from streams.topics import ensure_topics

log = logging.getLogger("engage.worker")


def run_worker(settings: WorkerSettings, config: EngageConfig) -> int:
    """Create topics, expose metrics, and run the worker until it is stopped."""
    from dataclasses import replace

    from streams.app import EngageWorker

    partitions = ensure_topics(settings.broker, settings.names, settings.partitions)
    settings = replace(settings, partitions=partitions)
    metrics = Metrics()
    metrics.serve(settings.metrics_port)
    worker = EngageWorker(settings, config, metrics)
    faust_worker = Worker(
        worker.app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
    )
    faust_worker.execute_from_commandline()  # exits the process when the worker stops
    return 0
