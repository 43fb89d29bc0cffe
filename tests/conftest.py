from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafka_fixture import BrokerUnderTest, kafka_for_tests


@pytest.fixture(scope="session")
def kafka() -> Iterator[BrokerUnderTest]:
    """A real Kafka broker for the whole test session."""
    with kafka_for_tests() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: BrokerUnderTest) -> str:
    """The test broker's bootstrap address."""
    return kafka.bootstrap
