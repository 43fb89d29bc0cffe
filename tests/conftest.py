from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.local_kafka import LocalBroker
from tests.kafka_fixture import BrokerUnderTest, kafka_for_tests, secure_kafka_for_tests


@pytest.fixture(scope="session")
def kafka() -> Iterator[BrokerUnderTest]:
    """A real Kafka broker for the whole test session."""
    with kafka_for_tests() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: BrokerUnderTest) -> str:
    """The test broker's bootstrap address."""
    return kafka.bootstrap


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[LocalBroker]:
    """A real broker whose client listeners need SASL/SCRAM, TLS or both (started on demand)."""
    with secure_kafka_for_tests() as broker:
        yield broker
