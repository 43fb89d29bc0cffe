"""`engage webhook`: the thin runtime around the webhook sink, with its flags and /metrics.

Every flag has an environment variable (named in its help); a flag wins over its variable.
The secret comes from --secret or --secret-file, else $ENGAGE_WEBHOOK_SECRET or the file named
by $ENGAGE_WEBHOOK_SECRET_FILE, read as every secret is (streams/secrets.py). Prefer a file or
the variable: flags show in `ps`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from scoring.triggers.registry import trigger_types
from sinks.argtypes import positive_int
from sinks.webhook_topics import DEFAULT_DLQ_TOPIC, DEFAULT_GROUP_ID, trigger_topics
from streams.secrets import SecretError, read_secret
from streams.settings import DEFAULT_BROKER, env_broker

if TYPE_CHECKING:  # the runtime (aiokafka, httpx, aiohttp) loads only when the command runs
    from sinks.webhook_consumer import RunReport, WebhookSettings
    from sinks.webhook_metrics import WebhookMetrics

DEFAULT_METRICS_PORT = 9465
SECRET_ENV = "ENGAGE_WEBHOOK_SECRET"
LOG_LEVELS = ("debug", "info", "warn", "error")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class _Misuse(Exception):
    """How the command was called cannot work (usage, exit 2)."""


def _float_type(minimum: float, strict: bool) -> Callable[[str], float]:
    """An argparse type: a number above `minimum` (or at least it, when not `strict`)."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > minimum if strict else value >= minimum):
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    return parse


positive_float = _float_type(0.0, strict=True)
non_negative_float = _float_type(0.0, strict=False)


def port_or_zero(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 turns it off)")
    return value


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the `webhook` command; defaults come from the environment."""
    parser.set_defaults(webhook_parser=parser)
    add = parser.add_argument
    add("--broker", default=env_broker(),
        help=f"Kafka bootstrap servers ($KAFKA_BOOTSTRAP_SERVERS, default {DEFAULT_BROKER})")
    add("--url", default=_env("ENGAGE_WEBHOOK_URL"),
        help="webhook endpoint, http or https ($ENGAGE_WEBHOOK_URL; required)")
    add("--secret", default=None, help=f"HMAC signing secret (${SECRET_ENV})")
    add("--secret-file", default=None,
        help=f"file holding the secret, whitespace around it ignored (${SECRET_ENV}_FILE)")
    add("--types", default=_env("ENGAGE_WEBHOOK_TYPES", ""),
        help="comma-separated trigger types ($ENGAGE_WEBHOOK_TYPES; default all: "
        + ",".join(trigger_types()) + ")")
    add("--topic-prefix", default=_env("ENGAGE_TOPIC_PREFIX", ""),
        help="prefix of every topic name, as given to the worker ($ENGAGE_TOPIC_PREFIX)")
    add("--group-id", default=_env("ENGAGE_WEBHOOK_GROUP_ID", DEFAULT_GROUP_ID),
        help=f"consumer group ($ENGAGE_WEBHOOK_GROUP_ID, default {DEFAULT_GROUP_ID})")
    add("--dlq-topic", default=_env("ENGAGE_WEBHOOK_DLQ_TOPIC", DEFAULT_DLQ_TOPIC),
        help=f"dead-letter topic, after the prefix ($ENGAGE_WEBHOOK_DLQ_TOPIC, default "
        f"{DEFAULT_DLQ_TOPIC}); must exist")
    add("--max-attempts", type=positive_int, default=_env("ENGAGE_WEBHOOK_MAX_ATTEMPTS", "5"),
        help="HTTP attempts per trigger ($ENGAGE_WEBHOOK_MAX_ATTEMPTS, default 5)")
    add("--timeout", type=positive_float, default=_env("ENGAGE_WEBHOOK_TIMEOUT", "10"),
        help="seconds per HTTP attempt ($ENGAGE_WEBHOOK_TIMEOUT, default 10)")
    add("--backoff-base", type=non_negative_float,
        default=_env("ENGAGE_WEBHOOK_BACKOFF_BASE", "0.5"),
        help="first backoff ceiling in seconds, doubling ($ENGAGE_WEBHOOK_BACKOFF_BASE, 0.5)")
    add("--backoff-max", type=non_negative_float,
        default=_env("ENGAGE_WEBHOOK_BACKOFF_MAX", "30"),
        help="backoff and Retry-After cap in seconds ($ENGAGE_WEBHOOK_BACKOFF_MAX, 30)")
    add("--concurrency", type=positive_int, default=_env("ENGAGE_WEBHOOK_CONCURRENCY", "8"),
        help="deliveries in flight per partition ($ENGAGE_WEBHOOK_CONCURRENCY, default 8)")
    add("--max-pending", type=positive_int, default=_env("ENGAGE_WEBHOOK_MAX_PENDING", "1000"),
        help="uncommitted records per partition before it is paused "
        "($ENGAGE_WEBHOOK_MAX_PENDING, default 1000)")
    add("--max-connections", type=positive_int,
        default=_env("ENGAGE_WEBHOOK_MAX_CONNECTIONS", "64"),
        help="pooled HTTP connections in all ($ENGAGE_WEBHOOK_MAX_CONNECTIONS, default 64)")
    add("--standard-webhooks", action=argparse.BooleanOptionalAction, default=None,
        help="also send Standard Webhooks headers ($ENGAGE_WEBHOOK_STANDARD_WEBHOOKS)")
    add("--deliver-expired", action=argparse.BooleanOptionalAction, default=None,
        help="deliver triggers past expires_at instead of skipping them "
        "($ENGAGE_WEBHOOK_DELIVER_EXPIRED)")
    add("--metrics-port", type=port_or_zero,
        default=_env("ENGAGE_WEBHOOK_METRICS_PORT", str(DEFAULT_METRICS_PORT)),
        help="Prometheus /metrics port, 0 for none "
        f"($ENGAGE_WEBHOOK_METRICS_PORT, default {DEFAULT_METRICS_PORT})")
    add("--metrics-addr", default=_env("ENGAGE_WEBHOOK_METRICS_ADDR", "127.0.0.1"),
        help="address /metrics binds to ($ENGAGE_WEBHOOK_METRICS_ADDR, default 127.0.0.1)")
    add("--log-level", type=str.lower, choices=LOG_LEVELS,
        default=_env("ENGAGE_LOG_LEVEL", "info"), help="($ENGAGE_LOG_LEVEL, default info)")


def _flag(value: bool | None, env_name: str) -> bool:
    if value is not None:
        return value
    text = os.environ.get(env_name, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Misuse(f"${env_name} must be true or false, not {text!r}")


def _secret(args: argparse.Namespace) -> bytes:
    """The secret from --secret or --secret-file, else $ENGAGE_WEBHOOK_SECRET(_FILE)."""
    if args.secret and args.secret_file:
        raise _Misuse("give --secret or --secret-file, not both")
    flags = {SECRET_ENV: args.secret or "", f"{SECRET_ENV}_FILE": args.secret_file or ""}
    try:
        secret = read_secret(SECRET_ENV, flags) or read_secret(SECRET_ENV)
    except SecretError as exc:
        raise _Misuse(str(exc)) from None
    if not secret:
        raise _Misuse(f"a secret is required (--secret, --secret-file, ${SECRET_ENV} "
                      f"or ${SECRET_ENV}_FILE)")
    return secret.encode()


def settings_from_args(args: argparse.Namespace) -> WebhookSettings:
    """Checked settings, or `_Misuse` saying what is wrong."""
    from sinks.webhook_consumer import WebhookSettings
    from sinks.webhook_delivery import RetryPolicy, validate_url

    if not args.url:
        raise _Misuse("a webhook URL is required (--url or $ENGAGE_WEBHOOK_URL)")
    if args.log_level not in LOG_LEVELS:  # argparse checks choices of flags, not of defaults
        raise _Misuse(f"$ENGAGE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    types = tuple(t.strip() for t in (args.types or "").split(",") if t.strip())
    try:
        validate_url(args.url)
        trigger_topics(types, args.topic_prefix)
        retry = RetryPolicy(
            max_attempts=args.max_attempts, timeout_s=args.timeout,
            backoff_base_s=args.backoff_base, backoff_max_s=args.backoff_max,
        )
    except ValueError as exc:
        raise _Misuse(str(exc)) from None
    return WebhookSettings(
        url=args.url,
        secret=_secret(args),
        broker=args.broker,
        types=types,
        topic_prefix=args.topic_prefix,
        group_id=args.group_id,
        dlq_topic=args.dlq_topic,
        retry=retry,
        concurrency=args.concurrency,
        max_pending=args.max_pending,
        max_connections=args.max_connections,
        standard_webhooks=_flag(args.standard_webhooks, "ENGAGE_WEBHOOK_STANDARD_WEBHOOKS"),
        deliver_expired=_flag(args.deliver_expired, "ENGAGE_WEBHOOK_DELIVER_EXPIRED"),
        kafka_client=dict(getattr(args, "kafka_client", None) or {}),
    )


def _usage_error(args: argparse.Namespace, message: str) -> int:
    parser: argparse.ArgumentParser | None = getattr(args, "webhook_parser", None)
    if parser is not None:
        parser.print_usage(sys.stderr)
    print(f"engage webhook: error: {message}", file=sys.stderr)
    return 2


async def _serve(settings: WebhookSettings, metrics: WebhookMetrics) -> RunReport:
    """Run until SIGINT or SIGTERM, then drain and commit."""
    from sinks.webhook_consumer import run_webhook_sink

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
    try:
        return await run_webhook_sink(settings, metrics=metrics, stop=stop)
    finally:
        if in_main:
            for sig in signals:
                loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Run the sink until Ctrl-C or SIGTERM: 0 on a clean stop, 2 on misuse, 1 on failure."""
    from aiokafka.errors import KafkaError

    from sinks.webhook import SinkFailed
    from sinks.webhook_consumer import TopicMissing
    from sinks.webhook_metrics import WebhookMetrics

    try:
        settings = settings_from_args(args)
    except _Misuse as exc:
        return _usage_error(args, str(exc))
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    metrics = WebhookMetrics()
    if args.metrics_port:
        try:
            metrics.serve(args.metrics_port, args.metrics_addr)
        except OSError as exc:
            return _usage_error(
                args, f"cannot serve /metrics on {args.metrics_addr}:{args.metrics_port} "
                f"({exc.strerror or exc}); choose another --metrics-port",
            )
    try:
        report = asyncio.run(_serve(settings, metrics))
    except (TopicMissing, SinkFailed) as exc:
        print(f"engage webhook: error: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        print(f"engage webhook: cannot reach Kafka at {settings.broker}: {exc}", file=sys.stderr)
        return 1
    stats = report.sink
    print(
        f"webhook: consumed {stats.consumed}, delivered {stats.delivered}, "
        f"dead-lettered {stats.dead_lettered}, control skipped {stats.skipped_control}, "
        f"expired {stats.expired}",
        file=sys.stderr,
    )
    return 0
