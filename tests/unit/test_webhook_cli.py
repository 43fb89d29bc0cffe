"""`engage webhook` flags and environment: settings, secrets, and misuse (exit 2, no traceback)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from sinks.webhook_topics import trigger_topics
from streams.webhook_cli import add_arguments, run, settings_from_args

URL = "http://127.0.0.1:1/hook"
ENV = [
    "KAFKA_BOOTSTRAP_SERVERS", "ENGAGE_TOPIC_PREFIX", "ENGAGE_WEBHOOK_URL",
    "ENGAGE_WEBHOOK_SECRET", "ENGAGE_WEBHOOK_SECRET_FILE", "ENGAGE_WEBHOOK_TYPES",
    "ENGAGE_WEBHOOK_CONCURRENCY", "ENGAGE_WEBHOOK_STANDARD_WEBHOOKS",
    "ENGAGE_WEBHOOK_DELIVER_EXPIRED", "ENGAGE_WEBHOOK_METRICS_PORT",
    "ENGAGE_WEBHOOK_METRICS_ADDR", "ENGAGE_WEBHOOK_MAX_ATTEMPTS", "ENGAGE_LOG_LEVEL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="engage webhook")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_trigger_topics() -> None:
    assert trigger_topics(["milestone"], "t1.") == ["t1.triggers.milestone"]
    from scoring.triggers.registry import trigger_types

    assert len(trigger_topics(None)) == len(trigger_types())
    with pytest.raises(ValueError):
        trigger_topics(["nope"])


def test_cli_requires_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--url", URL)) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: engage webhook")
    assert "a secret is required" in err
    assert run(parse("--url", URL, "--secret", "x", "--types", "bad")) == 2
    assert "unknown trigger types: bad" in capsys.readouterr().err


def test_cli_refuses_missing_or_bad_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--secret", "x")) == 2
    assert "a webhook URL is required" in capsys.readouterr().err
    assert run(parse("--secret", "x", "--url", "ftp://127.0.0.1/")) == 2
    assert "must be http or https" in capsys.readouterr().err


def test_flags_become_settings() -> None:
    settings = settings_from_args(parse(
        "--url", URL, "--secret", "s", "--types", "milestone, streak", "--topic-prefix", "p.",
        "--max-attempts", "7", "--timeout", "2.5", "--backoff-base", "0", "--concurrency", "3",
        "--standard-webhooks", "--broker", "127.0.0.1:1",
    ))
    assert settings.secret == b"s"
    assert settings.topics == ["p.triggers.milestone", "p.triggers.streak"]
    assert settings.dead_letter_topic == "p.triggers.webhook.dlq"
    assert (settings.retry.max_attempts, settings.retry.timeout_s,
            settings.retry.backoff_base_s) == (7, 2.5, 0.0)
    assert (settings.concurrency, settings.standard_webhooks, settings.deliver_expired) == (
        3, True, False)
    assert settings.broker == "127.0.0.1:1"
    assert "secret" not in repr(settings)  # never printed in logs


def test_environment_gives_every_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"from-a-file\n")
    monkeypatch.setenv("ENGAGE_WEBHOOK_URL", URL)
    monkeypatch.setenv("ENGAGE_WEBHOOK_SECRET_FILE", str(secret_file))
    monkeypatch.setenv("ENGAGE_TOPIC_PREFIX", "tenant.")
    monkeypatch.setenv("ENGAGE_WEBHOOK_TYPES", "vip_promotion")
    monkeypatch.setenv("ENGAGE_WEBHOOK_CONCURRENCY", "4")
    monkeypatch.setenv("ENGAGE_WEBHOOK_DELIVER_EXPIRED", "yes")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:2")
    monkeypatch.setenv("ENGAGE_WEBHOOK_METRICS_PORT", "0")
    monkeypatch.setenv("ENGAGE_WEBHOOK_METRICS_ADDR", "0.0.0.0")
    args = parse()
    settings = settings_from_args(args)
    assert settings.secret == b"from-a-file"
    assert settings.topics == ["tenant.triggers.vip_promotion"]
    assert (settings.concurrency, settings.deliver_expired, settings.broker) == (
        4, True, "127.0.0.1:2")
    assert (args.metrics_port, args.metrics_addr) == (0, "0.0.0.0")
    # A flag wins over its variable.
    assert settings_from_args(parse("--no-deliver-expired")).deliver_expired is False


def test_secret_sources_are_checked_and_flags_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret\r\n")
    assert settings_from_args(parse("--url", URL, "--secret-file", str(secret_file))).secret == (
        b"file-secret")
    assert run(parse("--url", URL, "--secret", "a", "--secret-file", str(secret_file))) == 2
    assert "not both" in capsys.readouterr().err
    missing = tmp_path / "missing"
    assert run(parse("--url", URL, "--secret-file", str(missing))) == 2
    assert f"ENGAGE_WEBHOOK_SECRET_FILE={missing}: No such file" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    assert run(parse("--url", URL, "--secret-file", str(tmp_path / "empty"))) == 2
    assert "is empty" in capsys.readouterr().err
    monkeypatch.setenv("ENGAGE_WEBHOOK_SECRET_FILE", str(secret_file))
    assert settings_from_args(parse("--url", URL)).secret == b"file-secret"
    monkeypatch.setenv("ENGAGE_WEBHOOK_SECRET", "env-secret")  # the variable, as for any secret
    assert settings_from_args(parse("--url", URL)).secret == b"env-secret"
    assert settings_from_args(parse("--url", URL, "--secret", "flag")).secret == b"flag"


def test_bad_environment_values_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGE_WEBHOOK_STANDARD_WEBHOOKS", "maybe")
    assert run(parse("--url", URL, "--secret", "x")) == 2
    assert "ENGAGE_WEBHOOK_STANDARD_WEBHOOKS must be true or false" in capsys.readouterr().err
    monkeypatch.setenv("ENGAGE_WEBHOOK_STANDARD_WEBHOOKS", "on")
    monkeypatch.setenv("ENGAGE_LOG_LEVEL", "loud")
    assert run(parse("--url", URL, "--secret", "x")) == 2
    assert "$ENGAGE_LOG_LEVEL must be one of debug, info, warn, error" in capsys.readouterr().err
    monkeypatch.setenv("ENGAGE_LOG_LEVEL", "WARN")
    assert parse().log_level == "warn"
    monkeypatch.setenv("ENGAGE_WEBHOOK_MAX_ATTEMPTS", "many")
    with pytest.raises(SystemExit) as exited:
        parse("--url", URL)
    assert exited.value.code == 2
    assert "'many' is not a whole number" in capsys.readouterr().err


def test_busy_metrics_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run(parse("--url", URL, "--secret", "x", "--metrics-port", str(port))) == 2
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in capsys.readouterr().err
