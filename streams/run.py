"""Starting the worker: topics first, then metrics, then the Faust worker loop."""

from __future__ import annotations

import logging
import socket

from faust.worker import Worker

from scoring.config import EngageConfig
from sinks.metrics import Metrics
from streams.settings import WorkerSettings
from streams.topics import ensure_topics

log = logging.getLogger("engage.worker")


class PortInUse(RuntimeError):
    """A port the worker needs is taken (another worker is probably running)."""


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_worker(settings: WorkerSettings, config: EngageConfig) -> int:
    """Create topics, expose metrics, and run the worker until it is stopped."""
    from dataclasses import replace

    from streams.app import EngageWorker

    partitions = ensure_topics(settings.broker, settings.names, settings.partitions)
    settings = replace(settings, partitions=partitions)
    metrics = Metrics()
    try:
        metrics.serve(settings.metrics_port)
    except OSError as exc:
        raise PortInUse(
            f"cannot serve metrics on 127.0.0.1:{settings.metrics_port} ({exc.strerror}); "
            "choose another with --metrics-port or ENGAGE_METRICS_PORT"
        ) from None
    if not _port_free(settings.web_port):
        raise PortInUse(
            f"the web port 127.0.0.1:{settings.web_port} is in use; "
            "choose another with --web-port or ENGAGE_WEB_PORT"
        )
    worker = EngageWorker(settings, config, metrics)
    faust_worker = Worker(
        worker.app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
    )
    faust_worker.execute_from_commandline()  # exits the process when the worker stops
    return 0
