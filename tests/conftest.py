from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafka_fixture import kafka_for_tests


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka broker for the whole test session."""
    with kafka_for_tests() as bootstrap:
        yield bootstrap
