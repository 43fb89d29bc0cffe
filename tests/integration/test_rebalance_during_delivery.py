"""Through the real broker: a rebalance while batches are in flight between scoring and
storing (streams/pipeline.py) drops them, and the next owners count every record once (the
scenario is tests/chaos/delivery_rebalance.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.delivery_rebalance import rebalance_during_delivery

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(480)
def test_a_rebalance_during_a_delivery_drops_the_batches_in_flight_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    shortfall, dropped = rebalance_during_delivery(kafka_bootstrap, tmp_path)
    assert dropped, "the first worker dropped no batch: the run did not test a drop"
    assert shortfall == ""
