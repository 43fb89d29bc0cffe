"""Through a real broker whose listeners demand SASL/SCRAM, TLS or client certificates: the
worker (Faust, and its aiokafka model reader) and the side tools (`engage topics`,
`simulate --topic`, `model`) each connect the way a secured cluster makes them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from kafka import KafkaAdminClient, KafkaProducer

from deploy.local_kafka import LocalBroker
from sinks.webhook_consumer import WebhookSettings, run_webhook_sink
from streams.cli import main
from streams.kafka_security import KafkaSecurity
from tests.integration.worker_process import (
    WorkerHandle,
    running_worker,
    unique_names,
    webhook_receiver,
)

pytestmark = pytest.mark.kafka

EVENTS = 200


def metric_total(text: str, name: str, labels: str = "") -> float:
    pattern = re.compile(rf"^{name}\{{[^}}]*{re.escape(labels)}[^}}]*\}} (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def wait_for_metric(worker: WorkerHandle, name: str, labels: str, at_least: float) -> float:
    """The metric's total once it reaches `at_least` (or whatever it is after 90 s)."""
    deadline = time.monotonic() + 90
    value = 0.0
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # the worker is still starting
            value = metric_total(worker.metrics(), name, labels)
        if value >= at_least:
            break
        time.sleep(0.5)
    return value


def test_worker_and_side_tools_through_sasl_scram_and_tls(
    secure_kafka: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    broker = secure_kafka
    user, password = broker.sasl_user
    password_file = tmp_path / "kafka-password"
    password_file.write_text(password + "\n")
    sasl_ssl = f"127.0.0.1:{broker.tls_port}"
    names = unique_names()

    # A listener that demands credentials refuses wrong ones (so the rest proves something).
    async def connect_with_wrong_password() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}",
                                    **KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", user,
                                                    "not-the-password").client_settings())
        try:
            with pytest.raises(KafkaConnectionError):
                await producer.start()
        finally:
            await producer.stop()

    asyncio.run(connect_with_wrong_password())
    assert "SaslAuthenticationFailed" in caplog.text

    # `engage topics`: SASL_SSL + SCRAM-SHA-256 from a Java-style client properties file.
    properties = tmp_path / "client.properties"
    properties.write_text(
        f"bootstrap.servers={sasl_ssl}\nsecurity.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-256\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        f'    username="{user}" password="{password}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={broker.ca_file}\n"
    )
    assert main(["topics", "--kafka-config", str(properties), "--topic-prefix", names.prefix,
                 "--partitions", "2"]) == 0
    mtls = KafkaSecurity("SSL", ssl_cafile=str(broker.ca_file),
                         ssl_certfile=str(broker.client_cert_file),
                         ssl_keyfile=str(broker.client_key_file))
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{broker.mtls_port}",
                             **mtls.client_settings())
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
    finally:
        admin.close()
    assert described[names.interactions] == 2 and described[names.churn_models] == 1

    # The worker: SASL_SSL + SCRAM-SHA-512, the broker's certificate checked against the CA.
    worker_security = [
        "--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "SCRAM-SHA-512",
        "--kafka-sasl-username", user, "--kafka-sasl-password-file", str(password_file),
        "--kafka-ssl-cafile", str(broker.ca_file),
    ]
    with running_worker(sasl_ssl, names, tmp_path, *worker_security) as worker:
        # `engage simulate --topic`: mutual TLS, a client certificate instead of a password.
        assert main([
            "simulate", "--topic", names.interactions, "--broker", f"127.0.0.1:{broker.mtls_port}",
            "--kafka-security-protocol", "SSL", "--kafka-ssl-cafile", str(broker.ca_file),
            "--kafka-ssl-certfile", str(broker.client_cert_file),
            "--kafka-ssl-keyfile", str(broker.client_key_file),
            "--users", "15", "--days", "6", "--max-events", str(EVENTS), "--no-progress",
            "--truth", str(tmp_path / "truth.jsonl"),
        ]) == 0
        assert f"simulate: {EVENTS} events" in capsys.readouterr().out
        consumed = wait_for_metric(worker, "engage_events_consumed_total", "", EVENTS)
        assert consumed == EVENTS

        # `engage model`: SASL_PLAINTEXT + SCRAM-SHA-256 and the topic prefix, all from the
        # environment, the password from a file.
        for name, value in {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker.sasl_port}",
            "ENGAGE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "ENGAGE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "ENGAGE_KAFKA_SASL_USERNAME": user,
            "ENGAGE_KAFKA_SASL_PASSWORD_FILE": str(password_file),
            "ENGAGE_TOPIC_PREFIX": names.prefix,
        }.items():
            monkeypatch.setenv(name, value)
        assert main(["model", "swap", "forest", "--timeout", "60"]) == 0
        assert "champion  forest" in capsys.readouterr().out
        # The worker's model reader (aiokafka, SASL_SSL) reads what lands on churn.models: an
        # artifact nobody signed is read and refused.
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{broker.mtls_port}",
                                 **mtls.client_settings())
        producer.send(names.churn_models, key=b"champion", value=b"unsigned").get(timeout=30)
        producer.close()
        refused = wait_for_metric(worker, "engage_churn_model_artifacts_rejected_total", "", 1)
        assert refused == 1

        # The webhook sink's consumer and dead-letter producer: SASL_SSL, SCRAM-SHA-512.
        sink_security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", user, password,
                                      ssl_cafile=str(broker.ca_file))
        trigger = {"trigger_id": "t-secure", "type": "win_back", "user_id": "u1",
                   "variant": "treatment"}
        producer = KafkaProducer(bootstrap_servers=sasl_ssl, **sink_security.client_settings())
        producer.send(names.trigger("win_back"), json.dumps(trigger).encode()).get(timeout=30)
        producer.close()
        with webhook_receiver() as url:
            settings = WebhookSettings(
                url=url, secret=b"s3cret", broker=sasl_ssl, types=("win_back",),
                topic_prefix=names.prefix, group_id=f"{names.prefix}webhook",
                kafka_client=sink_security.client_settings(),
            )
            report = asyncio.run(run_webhook_sink(settings, stop_after=1, idle_timeout_s=60))
        assert (report.sink.consumed, report.sink.delivered) == (1, 1)
