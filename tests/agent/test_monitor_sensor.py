"""The worker's Faust monitor (streams/monitoring.py) on a real, unstarted Faust app: the
per-partition end offsets (consumer lag) are exported, and still are after a rebalance."""

from __future__ import annotations

import faust
from faust.types import TP

from sinks.metrics import Metrics
from streams.monitoring import attach_monitoring

END_OFFSET = "engage_faust_topic_partition_end_offset"
TP0 = TP("interactions", 0)


def _monitor() -> tuple[faust.App, Metrics]:
    app = faust.App("monitor-test", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    metrics = Metrics()
    attach_monitoring(app, metrics)
    return app, metrics


def _end(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value(
        END_OFFSET, {"topic": TP0.topic, "partition": str(TP0.partition)})


def test_the_end_offset_is_set_as_it_moves() -> None:
    app, metrics = _monitor()
    for offset in (10, 10, 10, 25):  # one call per record: the offset moves per fetch
        app.monitor.track_tp_end_offset(TP0, offset)
    assert _end(metrics) == 25
    assert app.monitor.tp_end_offsets[TP0] == 25


def test_the_end_offset_is_exported_again_after_a_rebalance() -> None:
    app, metrics = _monitor()
    app.monitor.track_tp_end_offset(TP0, 10)
    state = app.monitor.on_rebalance_start(app)
    assert _end(metrics) is None  # Faust removes the partitions' series
    app.monitor.on_rebalance_end(app, state)
    app.monitor.track_tp_end_offset(TP0, 10)  # the same end as before the rebalance
    assert _end(metrics) == 10
    app.monitor.track_tp_end_offset(TP0, 40)
    assert _end(metrics) == 40
