"""/readyz's judgement of input partitions: one that has records waiting and does not move
is stalled, even while other partitions (and ticks) keep batches coming."""

from __future__ import annotations

import time

from faust.types import TP

from streams.app import Health
from streams.processor import InputRecord

P0, P1 = TP("in", 0), TP("in", 1)


def _read(health: Health, tp: TP, offset: int) -> None:
    health.batch_done([InputRecord(tp.topic, tp.partition, offset, b"k", b"{}", [])])


def test_a_partition_that_waits_and_does_not_move_is_stalled_while_others_flow() -> None:
    health = Health()
    health.assign({P0, P1})
    _read(health, P0, 9)
    _read(health, P1, 4)
    health.ends = {P0: 10, P1: 50}  # the broker's ends: P0 read to its end, P1 45 waiting
    assert health.stalled(after_s=0.05) == {}
    time.sleep(0.1)
    _read(health, P0, 9)  # P0 keeps moving (or is idle at its end): never stalled
    assert health.stalled(after_s=0.05) == {P1: 45}
    _read(health, P1, 49)
    assert health.stalled(after_s=0.05) == {}


def test_a_wait_counts_from_the_latest_assignment_or_recovery() -> None:
    health = Health()
    health.assign({P0})
    health.ends = {P0: 3}
    assert health.stalled(after_s=0.05) == {}
    time.sleep(0.1)
    assert health.stalled(after_s=0.05) == {P0: 3}  # never read since it was assigned
    health.assign({P0, P1})  # a rebalance, however long, is not a stall
    assert health.stalled(after_s=0.05) == {}
    time.sleep(0.1)
    assert health.stalled(after_s=0.05) == {P0: 3}
    health.restart_clocks()  # the new assignment's recovery finished
    assert health.stalled(after_s=0.05) == {}


def test_a_partition_read_to_its_end_by_an_earlier_owner_is_not_waiting() -> None:
    health = Health()
    health.assign({P0})
    health.ends, health.committed = {P0: 9}, {P0: 9}
    time.sleep(0.1)
    assert health.stalled(after_s=0.05) == {}
    health.ends = {P0: 12}
    assert health.stalled(after_s=0.05) == {P0: 3}
