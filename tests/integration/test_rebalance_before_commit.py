"""Through the real broker: a partition that keeps its owner through a rebalance loses no
record, even when the rebalance comes during the owner's first batch (nothing committed
yet) and Faust's seek after the recovery is slow. Before the fix every run of this lost the
kept partition's records (issue #9; the scenario is tests/chaos/first_batch_rebalance.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.first_batch_rebalance import rebalance_during_first_batch

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(480)
def test_a_rebalance_during_the_first_batch_loses_no_record(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    assert rebalance_during_first_batch(kafka_bootstrap, tmp_path) == ""
