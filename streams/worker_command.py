"""`engage worker`: its options and how they become WorkerSettings.

Every option also reads an `ENGAGE_*` variable (Kafka's bootstrap servers:
`KAFKA_BOOTSTRAP_SERVERS`), so a container is configured by its environment alone.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sinks.argtypes import positive_int
from streams import kafka_security
from streams.env_args import env_option
from streams.settings import WorkerSettings
from streams.topics_command import add_topology_arguments, names_from_args, non_negative_int

LOG_LEVELS = ("debug", "info", "warn", "error")
# kept here, not imported from streams.monitoring: that module imports Faust, which every
# `engage` command (replay, backtest...) would pay for when the parser is built
LOG_FORMATS = ("text", "json")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    env_option(p, "--config", env="ENGAGE_CONFIG", default=None,
               help="rules file (TOML); else the built-in defaults")
    net = p.add_argument_group("network")
    env_option(net, "--metrics-port", env="ENGAGE_METRICS_PORT", default="9464",
               type=positive_int, help="Prometheus /metrics port")
    env_option(net, "--web-port", env="ENGAGE_WEB_PORT", default="6066", type=positive_int,
               help="HTTP views: /users/{id}/, /leaderboard/, /healthz/")
    env_option(net, "--bind-address", env="ENGAGE_BIND_ADDRESS", default="127.0.0.1",
               help="address the web views and metrics listen on (0.0.0.0 in a container)")
    env_option(net, "--advertised-host", env="ENGAGE_ADVERTISED_HOST", default=None,
               help="host other workers reach this one's web views at, for forwarded user "
               "lookups (a pod IP); else the bind address, or the host name when that is "
               "0.0.0.0")
    add_topology_arguments(p)
    env_option(p, "--app-id", env="ENGAGE_APP_ID", default="engage",
               help="consumer group and Faust app id")
    env_option(p, "--store", env="ENGAGE_STORE", default="memory", choices=("memory", "rocksdb"),
               help="table store")
    env_option(p, "--data-dir", env="ENGAGE_DATA_DIR", default="var",
               help="where RocksDB and Faust keep local state")
    env_option(p, "--standby-replicas", env="ENGAGE_STANDBY_REPLICAS", default="0",
               type=non_negative_int,
               help="warm copies of each table partition kept on other workers")
    env_option(p, "--idle-advance-seconds", env="ENGAGE_IDLE_ADVANCE_SECONDS", default="60",
               type=positive_float,
               help="an idle partition's watermark follows wall time after this long")
    env_option(p, "--tick-seconds", env="ENGAGE_TICK_SECONDS", default="5",
               type=positive_float, help="how often ticks move idle partitions' watermarks")
    env_option(p, "--reference-wait-seconds", env="ENGAGE_REFERENCE_WAIT_SECONDS",
               default="120", type=non_negative_int,
               help="event-time alignment of population references: a partition waits up to "
               "this long for the others' snapshots of a day before adopting what it has "
               "(engage_reference_forced_total); 0: never waits (docs/scoring.md)")
    env_option(p, "--batch-max", env="ENGAGE_BATCH_MAX", default=str(WorkerSettings.batch_max),
               type=positive_int,
               help="most input records scored, delivered and stored as one batch")
    env_option(p, "--fetch-max-bytes", env="ENGAGE_FETCH_MAX_BYTES",
               default=str(WorkerSettings.fetch_max_bytes),
               type=positive_int,
               help="most bytes one fetch brings of each input partition (Faust's default is "
               "1 MiB; larger fetches cost the worker less CPU per record on a backlog)")
    env_option(p, "--batch-window-ms", env="ENGAGE_BATCH_WINDOW_MS", default="50",
               type=positive_float,
               help="longest a batch waits to fill before it is scored: latency at low "
               "rates (a backlog fills batches at once, whatever this is)")
    env_option(p, "--log-level", env="ENGAGE_LOG_LEVEL", default="info", choices=LOG_LEVELS,
               help="log level")
    env_option(p, "--log-format", env="ENGAGE_LOG_FORMAT", default="text", choices=LOG_FORMATS,
               help="text, or json (one object per line)")
    env_option(p, "--shutdown-timeout", env="ENGAGE_SHUTDOWN_TIMEOUT", default="15",
               type=positive_float,
               help="after SIGTERM the process exits within this many seconds, whatever holds it")
    insecure = p.add_argument(
        "--insecure-dev-key", action="store_true",
        default=os.environ.get("ENGAGE_INSECURE_DEV_KEY", "") not in ("", "0", "false"),
        help="accept model artifacts signed with the public development key (local trials "
        "only; env ENGAGE_INSECURE_DEV_KEY). Production sets ENGAGE_MODEL_SIGNING_KEY "
        "or ENGAGE_MODEL_SIGNING_KEY_FILE",
    )
    insecure.env = "ENGAGE_INSECURE_DEV_KEY"  # type: ignore[attr-defined]


def run(args: argparse.Namespace) -> int:
    from streams.cli import UsageError, _load_config
    from streams.run import PortInUse, run_worker
    from streams.secrets import SecretError, refuse_dev_key, signing_key
    from streams.topics import TopologyError
    from streams.topics_command import policy_from_args

    config = _load_config(args.config)
    try:
        key = signing_key(config)
    except SecretError as exc:
        raise UsageError(str(exc)) from None
    refusal = refuse_dev_key(key)
    if refusal and not args.insecure_dev_key:
        raise UsageError(refusal)
    connection = kafka_security.connection_from_args(args)
    settings = WorkerSettings(
        signing_key=key.key,
        shutdown_timeout_s=args.shutdown_timeout,
        broker=connection.bootstrap,
        security=connection.security,
        config_path=args.config,
        metrics_port=args.metrics_port,
        web_port=args.web_port,
        web_bind=args.bind_address,
        web_host=args.advertised_host or "",
        partitions=args.partitions,
        store=args.store,
        data_dir=Path(args.data_dir),
        names=names_from_args(args),
        topic_policy=policy_from_args(args, config.triggers.types()),
        standby_replicas=args.standby_replicas,
        app_id=args.app_id,
        idle_advance_s=args.idle_advance_seconds,
        tick_interval_s=args.tick_seconds,
        reference_wait_s=args.reference_wait_seconds,
        batch_max=args.batch_max,
        batch_within_s=args.batch_window_ms / 1000,
        fetch_max_bytes=args.fetch_max_bytes,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    try:
        return run_worker(settings, config)
    except (PortInUse, TopologyError) as exc:
        raise UsageError(str(exc)) from None
