"""Settings a platform team sets: topic policy, every worker option from the environment,
and where the worker listens and says it can be reached."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from streams.cli import build_parser, main
from streams.settings import WorkerSettings
from streams.topics import (
    TopicNames,
    TopicPolicy,
    TopicPolicyError,
    load_topic_policy,
    topic_specs,
)

CLUSTER_POLICY = """\
replication_factor = 3
min_insync_replicas = 2

[topics."engagement.dlq"]
partitions = 6
retention_ms = 2592000000

[topics."triggers.vip_promotion"]
replication_factor = 5
config = { "max.message.bytes" = "2097152" }
"""


def test_policy_sets_replication_min_isr_retention_and_free_partitions(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(CLUSTER_POLICY)
    names = TopicNames(prefix="acme.")
    specs = {s.name: s for s in topic_specs(names, 8, policy=load_topic_policy(path))}
    dlq, vip = specs["acme.engagement.dlq"], specs["acme.triggers.vip_promotion"]
    assert (dlq.partitions, dlq.replication_factor) == (6, 3)
    assert dlq.config["retention.ms"] == "2592000000"
    assert dlq.config["min.insync.replicas"] == "2"
    assert (vip.partitions, vip.replication_factor) == (8, 5)
    assert vip.config["max.message.bytes"] == "2097152"
    assert vip.config["retention.ms"] == str(7 * 86_400_000)  # the topology's own default
    scores = specs["acme.engagement.scores"]
    assert scores.config["cleanup.policy"] == "compact" and scores.replication_factor == 3
    assert specs["acme.churn.models"].partitions == 1
    assert all(s.replication_factor == 1 for s in topic_specs(names, 8))  # laptop defaults


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[topics."engagement.ticks"]\npartitions = 8\n', "fixed by the design"),
        ('[topics."churn.examples"]\npartitions = 2\n', "fixed by the design"),
        ('[topics."no.such"]\nretention_ms = 1\n', "unknown topics ['no.such']"),
        ("replication_factor = 1\nmin_insync_replicas = 2\n", "exceeds replication_factor"),
        ('[topics."churn.models"]\nconfig = { "cleanup.policy" = "delete" }\n',
         "cleanup.policy of 'churn.models' cannot be changed"),
    ],
)
def test_unsafe_policies_are_refused(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(toml)
    with pytest.raises(TopicPolicyError, match=message.replace("[", r"\[").replace("(", r"\(")):
        topic_specs(TopicNames(), 4, policy=load_topic_policy(path))


def test_policy_file_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text("replication_factor = 0\n")
    with pytest.raises(TopicPolicyError, match=r"Expected `int` >= 1 - at `\$.replication_factor`"):
        load_topic_policy(path)
    path.write_text("replicas = 3\n")
    with pytest.raises(TopicPolicyError, match="unknown field `replicas`"):
        load_topic_policy(path)


def test_flags_override_the_policy_defaults(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(CLUSTER_POLICY)
    policy = load_topic_policy(path).with_defaults(replication_factor=4, min_insync_replicas=None)
    assert (policy.replication_factor, policy.min_insync_replicas) == (4, 2)
    assert policy.internal_topic_config() == {"min.insync.replicas": "2"}
    assert TopicPolicy().with_defaults(None, None) == TopicPolicy()


def _worker_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            worker: argparse.ArgumentParser = action.choices["worker"]
            return worker
    raise AssertionError("no worker subcommand")


def test_every_worker_option_has_an_environment_variable() -> None:
    options = [a for a in _worker_parser()._actions if a.option_strings and a.dest != "help"]
    missing = [a.option_strings[0] for a in options
               if a.dest != "broker" and not getattr(a, "env", "").startswith("ENGAGE_")]
    assert missing == []
    assert len(options) == 36


ENV_CASES = [
    ("ENGAGE_METRICS_PORT", "9999", "metrics_port", 9999),
    ("ENGAGE_WEB_PORT", "7777", "web_port", 7777),
    ("ENGAGE_BIND_ADDRESS", "0.0.0.0", "bind_address", "0.0.0.0"),
    ("ENGAGE_SHUTDOWN_TIMEOUT", "30", "shutdown_timeout", 30.0),
    ("ENGAGE_BATCH_MAX", "500", "batch_max", 500),
    ("ENGAGE_BATCH_WINDOW_MS", "20", "batch_window_ms", 20.0),
    ("ENGAGE_INSECURE_DEV_KEY", "1", "insecure_dev_key", True),
    ("ENGAGE_ADVERTISED_HOST", "10.1.2.3", "advertised_host", "10.1.2.3"),
    ("ENGAGE_PARTITIONS", "12", "partitions", 12),
    ("ENGAGE_INPUT_TOPIC", "events", "input_topic", "events"),
    ("ENGAGE_TOPIC_PREFIX", "acme.", "topic_prefix", "acme."),
    ("ENGAGE_TOPICS_CONFIG", "/etc/engage/topics.toml", "topics_config",
     "/etc/engage/topics.toml"),
    ("ENGAGE_REPLICATION_FACTOR", "3", "replication_factor", 3),
    ("ENGAGE_MIN_INSYNC_REPLICAS", "2", "min_insync_replicas", 2),
    ("ENGAGE_APP_ID", "engage-prod", "app_id", "engage-prod"),
    ("ENGAGE_STORE", "rocksdb", "store", "rocksdb"),
    ("ENGAGE_DATA_DIR", "/var/lib/engage", "data_dir", "/var/lib/engage"),
    ("ENGAGE_STANDBY_REPLICAS", "1", "standby_replicas", 1),
    ("ENGAGE_IDLE_ADVANCE_SECONDS", "30", "idle_advance_seconds", 30.0),
    ("ENGAGE_TICK_SECONDS", "2.5", "tick_seconds", 2.5),
    ("ENGAGE_REFERENCE_WAIT_SECONDS", "30", "reference_wait_seconds", 30),
    ("ENGAGE_LOG_LEVEL", "warn", "log_level", "warn"),
    ("ENGAGE_LOG_FORMAT", "json", "log_format", "json"),
    ("ENGAGE_CONFIG", "/etc/engage/rules.toml", "config", "/etc/engage/rules.toml"),
]


@pytest.mark.parametrize(("env", "text", "dest", "value"), ENV_CASES)
def test_environment_sets_the_option(
    monkeypatch: pytest.MonkeyPatch, env: str, text: str, dest: str, value: object
) -> None:
    monkeypatch.setenv(env, text)
    assert getattr(build_parser().parse_args(["worker"]), dest) == value


def test_a_flag_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_WEB_PORT", "7777")
    monkeypatch.setenv("ENGAGE_LOG_FORMAT", "json")
    args = build_parser().parse_args(["worker", "--web-port", "8888", "--log-format", "text"])
    assert (args.web_port, args.log_format) == (8888, "text")


def test_a_bad_environment_value_is_a_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGE_PARTITIONS", "many")
    with pytest.raises(SystemExit) as info:
        main(["worker"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "argument --partitions: 'many' is not a whole number (from $ENGAGE_PARTITIONS)" in err
    monkeypatch.setenv("ENGAGE_PARTITIONS", "4")
    monkeypatch.setenv("ENGAGE_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit):
        main(["worker"])
    assert "'xml' is not one of text, json (from $ENGAGE_LOG_FORMAT)" in capsys.readouterr().err


def test_advertised_host_follows_the_bind_address_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    monkeypatch.delenv("ENGAGE_ADVERTISED_HOST", raising=False)
    assert WorkerSettings(web_bind="127.0.0.5").web_host == "127.0.0.5"
    assert WorkerSettings(web_bind="0.0.0.0").web_host == socket.gethostname()
    assert WorkerSettings(web_bind="0.0.0.0", web_host="10.0.0.7").web_host == "10.0.0.7"
    monkeypatch.delenv("ENGAGE_BIND_ADDRESS", raising=False)
    assert WorkerSettings().web_bind == "127.0.0.1"  # safe on a laptop
