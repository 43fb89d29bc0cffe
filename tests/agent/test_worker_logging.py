"""The worker process's logging: a quiet level must not turn every library's debug line on."""

from __future__ import annotations

import logging

import faust

from streams.run import BoundedShutdownWorker


def test_a_worker_at_log_level_error_keeps_debug_records_off() -> None:
    """Faust's terminal spinner sets the root logger to DEBUG at warn/error levels, which
    made aiokafka format a debug record for every send of a busy worker."""
    root = logging.getLogger()
    before = root.level, list(root.handlers)
    try:
        app = faust.App("engage-logging-test", broker="kafka://127.0.0.1:1")
        worker = BoundedShutdownWorker(app, loglevel="error", quiet=True,
                                       redirect_stdouts=False)
        worker.on_setup_root_logger(root, logging.ERROR)
        assert worker.spinner is None
        assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]
