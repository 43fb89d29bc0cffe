"""Starting the worker: topics first, then metrics, then the Faust worker loop."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from faust.worker import Worker

from scoring.config import EngageConfig
from sinks.metrics import Metrics
from streams.collector import measure_pauses, settle_collector
from streams.monitoring import attach_monitoring, logging_config
from streams.settings import WorkerSettings
from streams.topics import ensure_topics

log = logging.getLogger("engage.worker")


class PortInUse(RuntimeError):
    """A port the worker needs is taken (another worker is probably running)."""


def _port_free(port: int, address: str = "127.0.0.1") -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


class BoundedShutdownWorker(Worker):
    """Faust's worker, with a hard limit on how long a stop may take.

    A graceful stop commits what is done and leaves the group; if anything holds it up
    beyond `shutdown_timeout_s`, the process exits anyway. That is safe by design: state
    records the input position it reflects, so the next owner applies what this worker had
    not stored, once.
    """

    shutdown_timeout_s: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Faust's terminal spinner: at --log-level warn or error it sets the root logger to
        # DEBUG and spins on every record, so every library's debug line (aiokafka logs each
        # send) is formatted and handled — about 2 % of a busy worker (py-spy). A service
        # has no terminal to spin.
        self.spinner = None

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        settle_collector()  # what exists now (Faust, aiokafka, modules) is never garbage

    def _arm_watchdog(self, signal_name: str) -> None:
        def expire() -> None:
            log.error(
                "%s: still stopping after %.0f s; exiting now", signal_name,
                self.shutdown_timeout_s,
            )
            os._exit(143)

        timer = threading.Timer(self.shutdown_timeout_s, expire)
        timer.daemon = True
        timer.start()

    def _on_sigterm(self) -> None:
        self._arm_watchdog("SIGTERM")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm_watchdog("SIGINT")
        super()._on_sigint()


def run_worker(settings: WorkerSettings, config: EngageConfig) -> int:
    """Create topics, expose metrics, and run the worker until it is stopped."""
    from dataclasses import replace

    from streams.app import EngageWorker

    partitions = ensure_topics(
        settings.broker, settings.names, settings.partitions, config.triggers.types(),
        policy=settings.topic_policy, client=settings.security.client_settings(),
    )
    settings = replace(settings, partitions=partitions)
    metrics = Metrics()
    bind = settings.web_bind
    try:
        metrics.serve(settings.metrics_port, bind)
    except OSError as exc:
        raise PortInUse(
            f"cannot serve metrics on {bind}:{settings.metrics_port} ({exc.strerror}); "
            "choose another with --metrics-port or ENGAGE_METRICS_PORT"
        ) from None
    if not _port_free(settings.web_port, bind):
        raise PortInUse(
            f"the web port {bind}:{settings.web_port} is in use; "
            "choose another with --web-port or ENGAGE_WEB_PORT"
        )
    worker = EngageWorker(settings, config, metrics)
    attach_monitoring(worker.app, metrics)
    measure_pauses(metrics.registry)
    faust_worker = BoundedShutdownWorker(
        worker.app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        logging_config=logging_config(settings.log_format, settings.log_level),
    )
    faust_worker.shutdown_timeout_s = settings.shutdown_timeout_s
    faust_worker.execute_from_commandline()  # exits the process when the worker stops
    return 0
