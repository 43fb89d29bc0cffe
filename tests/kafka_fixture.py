"""Which Kafka the tests use, in DESIGN.md's order: KAFKA_BOOTSTRAP_SERVERS, else a
testcontainers Kafka where a Docker engine answers, else the project's own local broker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from deploy.local_kafka import LocalBroker

TEST_BROKER_PORT = int(os.environ.get("ENGAGE_TEST_KAFKA_PORT", "19092"))


def docker_engine_reachable() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@dataclass
class BrokerUnderTest:
    bootstrap: str
    local: LocalBroker | None = None  # set when the project started the broker itself

    def restart(self) -> None:
        """Stop and start the broker (only the project's own local broker can be)."""
        from deploy.local_kafka import down, up

        if self.local is None:
            raise RuntimeError("only the project's local broker can be restarted by a test")
        down(self.local)
        up(self.local)


@contextlib.contextmanager
def kafka_for_tests() -> Iterator[BrokerUnderTest]:
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if named:
        yield BrokerUnderTest(named)
        return
    if docker_engine_reachable():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield BrokerUnderTest(container.get_bootstrap_server())
        return
    from deploy.local_kafka import default_broker, down, reset, up

    broker = LocalBroker(
        port=TEST_BROKER_PORT, controller_port=TEST_BROKER_PORT + 1, home=default_broker().home
    )
    reset(broker)  # a clean broker per test session: no topics or offsets left from before
    up(broker)
    try:
        yield BrokerUnderTest(broker.bootstrap, broker)
    finally:
        down(broker)


# Five ports from here: PLAINTEXT, controller, SASL_PLAINTEXT, SASL_SSL, mutual TLS.
TEST_SECURE_BROKER_PORT = int(
    os.environ.get("ENGAGE_TEST_KAFKA_SASL_PORT", str(TEST_BROKER_PORT + 10))
)


@contextlib.contextmanager
def secure_kafka_for_tests() -> Iterator[LocalBroker]:
    """A second local broker with SASL_PLAINTEXT (port+2), SASL_SSL (port+3) and mutual-TLS
    SSL (port+4) listeners: SCRAM-SHA-256/512 and PLAIN users, a local CA (see its fields)."""
    from deploy.local_kafka import default_broker, down, reset, up, with_security

    port = TEST_SECURE_BROKER_PORT
    broker = with_security(
        LocalBroker(port=port, controller_port=port + 1, home=default_broker().home),
        sasl=True, tls=True,
    )
    reset(broker)
    up(broker)
    try:
        yield broker
    finally:
        down(broker)
