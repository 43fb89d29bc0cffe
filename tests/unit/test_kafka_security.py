"""Kafka security settings: sources and their order, the properties file, refusals."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest

from streams.cli import build_parser, main
from streams.kafka_security import (
    KafkaSecurity,
    KafkaSecurityError,
    connection_from_args,
    parse_properties,
    resolve_connection,
)

CONFLUENT_CLOUD = """\
# Required connection configs for Kafka producer, consumer, and admin
bootstrap.servers=pkc-xxxxx.eu-west-1.aws.confluent.cloud:9092
security.protocol=SASL_SSL
sasl.mechanisms=PLAIN
sasl.username=ABCDEFGH
sasl.password=s3cr3t/with=equals
# Best practice for higher availability in librdkafka clients prior to 1.7
session.timeout.ms=45000
client.dns.lookup=use_all_dns_ips
acks=all
"""

JAVA_SCRAM = """\
bootstrap.servers = b-1.msk.example:9096,b-2.msk.example:9096
security.protocol = SASL_SSL
sasl.mechanism = SCRAM-SHA-512
sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username="engage-svc" \\
    password="p@ss word";
"""


def test_confluent_cloud_properties_give_bootstrap_and_sasl_ssl(tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text(CONFLUENT_CLOUD)
    connection = resolve_connection(config_path=str(config), environ={})
    assert connection.bootstrap == "pkc-xxxxx.eu-west-1.aws.confluent.cloud:9092"
    s = connection.security
    assert (s.protocol, s.sasl_mechanism, s.sasl_username, s.sasl_password) == (
        "SASL_SSL", "PLAIN", "ABCDEFGH", "s3cr3t/with=equals",
    )
    settings = s.client_settings()
    assert settings["security_protocol"] == "SASL_SSL"
    assert settings["sasl_mechanism"] == "PLAIN"
    assert isinstance(settings["ssl_context"], ssl.SSLContext)
    assert settings["ssl_context"].check_hostname is True
    assert settings["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_java_jaas_config_with_continuation_lines(tmp_path: Path) -> None:
    props = parse_properties(JAVA_SCRAM)
    assert props["bootstrap.servers"] == "b-1.msk.example:9096,b-2.msk.example:9096"
    config = tmp_path / "msk.properties"
    config.write_text(JAVA_SCRAM)
    s = resolve_connection(config_path=str(config), environ={}).security
    assert (s.sasl_mechanism, s.sasl_username, s.sasl_password) == (
        "SCRAM-SHA-512", "engage-svc", "p@ss word",
    )


def test_flags_win_over_env_which_wins_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text(CONFLUENT_CLOUD)
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    env = {
        "ENGAGE_KAFKA_CONFIG": str(config),
        "ENGAGE_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "ENGAGE_KAFKA_SASL_USERNAME": "env-user",
        "ENGAGE_KAFKA_SASL_PASSWORD_FILE": str(secret),
        "KAFKA_BOOTSTRAP_SERVERS": "env-broker:9092",
    }
    connection = resolve_connection(
        broker=None, flags={"sasl_username": "flag-user"}, environ=env
    )
    s = connection.security
    assert connection.bootstrap == "env-broker:9092"
    assert s.sasl_mechanism == "SCRAM-SHA-256"
    assert s.sasl_username == "flag-user"
    assert s.sasl_password == "from-file"  # the trailing newline of the file is not part of it
    assert s.protocol == "SASL_SSL"  # from the file


def test_cli_flags_reach_the_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "ENGAGE_KAFKA_CONFIG",
                 "ENGAGE_KAFKA_SECURITY_PROTOCOL", "ENGAGE_KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    secret = tmp_path / "pw"
    secret.write_text("hunter2")
    args = build_parser().parse_args([
        "watch", "--broker", "k:9093", "--kafka-security-protocol", "sasl_plaintext",
        "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", "u",
        "--kafka-sasl-password-file", str(secret),
    ])
    connection = connection_from_args(args)
    assert connection.bootstrap == "k:9093"
    assert connection.security == KafkaSecurity(
        "SASL_PLAINTEXT", "SCRAM-SHA-512", "u", "hunter2"
    )
    assert "hunter2" not in repr(connection.security)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"protocol": "SASL_TLS"}, "is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
         "needs a SASL username and password"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI", "sasl_username": "u",
          "sasl_password": "p"}, "needs a SASL mechanism, one of PLAIN"),
        ({"protocol": "PLAINTEXT", "sasl_username": "u"}, "use SASL_PLAINTEXT or SASL_SSL"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
          "sasl_password": "p", "ssl_cafile": "/etc/hosts"}, "use SSL or SASL_SSL"),
        ({"protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, "cannot read TLS file"),
        ({"protocol": "SSL", "ssl_keyfile": "/etc/hosts"}, "needs its certificate"),
    ],
)
def test_inconsistent_settings_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaSecurityError, match=message.replace("(", r"\(")):
        KafkaSecurity(**settings)  # type: ignore[arg-type]


def test_unsupported_security_keys_are_refused_not_ignored(tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text("security.protocol=SSL\nssl.truststore.location=/x.jks\n"
                      "ssl.truststore.type=JKS\n")
    refused = re.escape("ssl.truststore.type=JKS is not supported")
    with pytest.raises(KafkaSecurityError, match=refused):
        resolve_connection(config_path=str(config), environ={})
    config.write_text("security.protocol=SASL_SSL\nsasl.oauthbearer.token.endpoint.url=x\n")
    refused = re.escape("sasl.oauthbearer.token.endpoint.url is not supported")
    with pytest.raises(KafkaSecurityError, match=refused):
        resolve_connection(config_path=str(config), environ={})


def test_faust_gets_sasl_credentials_with_the_tls_context() -> None:
    import faust

    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "u", "p")
    credentials = security.faust_settings()["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.protocol.value == "SASL_SSL"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert KafkaSecurity().faust_settings() == {}
    assert KafkaSecurity().client_settings() == {"security_protocol": "PLAINTEXT"}


def test_misconfiguration_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.delenv("ENGAGE_KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["topics", "--broker", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "SASL_SSL needs a SASL mechanism" in err and "Traceback" not in err
