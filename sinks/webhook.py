"""Webhook sink: trigger records from Kafka, POSTed as signed JSON to an HTTP endpoint.

Delivery is at-least-once. A record's offset is committed only after the webhook accepted it
(2xx) or, when every attempt failed, after a dead-letter record was written to the DLQ topic.
Receivers must therefore dedupe on `trigger_id`, which is also sent as `X-Engage-Trigger-Id`.

Every request is signed: `X-Engage-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
HMAC-SHA256(secret, f"{t}." + raw body). Receivers call `verify()` (or reimplement it: it is
twenty lines) on the raw body bytes before parsing them, and refuse stale timestamps.

Retries: connection errors, timeouts, 5xx and 429 are retried with exponential backoff and full
jitter (a `Retry-After` in seconds on 429/503 is honoured up to the backoff cap). Other 4xx and
3xx answers are final: redirects are not followed, so a signed body never lands somewhere else.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter

    from sinks.metrics import Metrics

log = logging.getLogger("engage.webhook")

from scoring.timeutil import format_rfc3339_ms, parse_rfc3339_ms  # noqa: E402
from scoring.triggers.registry import trigger_types  # noqa: E402 - the registry owns the list
from sinks.argtypes import positive_int  # noqa: E402

SIGNATURE_HEADER = "X-Engage-Signature"
TRIGGER_ID_HEADER = "X-Engage-Trigger-Id"
SECRET_ENV = "ENGAGE_WEBHOOK_SECRET"
DEFAULT_BROKER = "127.0.0.1:9092"
DEFAULT_DLQ_TOPIC = "triggers.webhook.dlq"
USER_AGENT = "engage-webhook/1"


# --------------------------------------------------------------------------- signatures


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The `X-Engage-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: bytes,
    body: bytes,
    header: str | None,
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """True when `header` is a valid signature of the raw `body`, made within `tolerance_s`.

    Several `v1=` values are accepted (any may match), so senders can rotate secrets.
    Anything malformed is simply refused; this never raises.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    # Evaluate every candidate (no short-circuit) so timing does not reveal which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one webhook delivery, after all its attempts."""

    delivered: bool
    attempts: int
    last_status: int | None
    error: str | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Do not follow redirects: a 3xx surfaces as an HTTPError with its status."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _retry_after_s(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None  # HTTP-date form: ignored, plain backoff applies


class WebhookDelivery:
    """POSTs signed JSON bodies to one URL, with retries, backoff and jitter."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http or https, not {url!r}")
        if not secret:
            raise ValueError("webhook secret must not be empty")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if backoff_base_s < 0 or backoff_max_s < 0 or timeout_s <= 0:
            raise ValueError("backoff must be >= 0 and timeout > 0")
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._opener = urllib.request.build_opener(_NoRedirect())

    def backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Delay after failed attempt number `attempt` (1-based): full jitter, capped."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        delay = self._rng.uniform(0.0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay

    def _attempt(self, body: bytes, trigger_id: str) -> tuple[int | None, str | None, Any]:
        """One POST: (status or None, error text or None, response headers or None)."""
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: sign(self.secret, body, int(self._clock())),
                TRIGGER_ID_HEADER: trigger_id,
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read()
                return int(response.status), None, response.headers
        except urllib.error.HTTPError as exc:
            try:
                exc.read()
            except Exception:
                pass
            finally:
                exc.close()
            return int(exc.code), f"HTTP {exc.code}", exc.headers
        except urllib.error.URLError as exc:
            return None, f"connection error: {exc.reason}", None
        except (OSError, http.client.HTTPException) as exc:
            return None, f"connection error: {type(exc).__name__}: {exc}", None

    @staticmethod
    def retryable(status: int | None) -> bool:
        """Connection errors (None), 5xx and 429 are worth another attempt."""
        return status is None or status == 429 or status >= 500

    def deliver(self, body: bytes, trigger_id: str) -> DeliveryResult:
        """POST `body` until a 2xx, a final answer, or `max_attempts` attempts."""
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.max_attempts + 1):
            status, error, headers = self._attempt(body, trigger_id)
            if status is not None and 200 <= status < 300:
                return DeliveryResult(True, attempt, status, None)
            if not self.retryable(status):
                return DeliveryResult(False, attempt, status, error or f"HTTP {status}")
            if attempt < self.max_attempts:
                retry_after = _retry_after_s(headers) if status in (429, 503) else None
                delay = self.backoff_s(attempt, retry_after)
                log.debug(
                    "webhook attempt %d for %s failed (%s); retrying in %.2fs",
                    attempt, trigger_id, error, delay,
                )
                self._sleep(delay)
        return DeliveryResult(False, self.max_attempts, status, error)


# --------------------------------------------------------------------------- Kafka sink


@dataclass
class SinkStats:
    """Counts from one run of the sink."""

    consumed: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    skipped_control: int = 0
    malformed: int = 0
    expired: int = 0  # delivered (or dead-lettered) although past expires_at
    results: list[DeliveryResult] = field(default_factory=list)


def trigger_topics(types: Iterable[str] | None, topic_prefix: str = "") -> list[str]:
    """`<prefix>triggers.<type>` for each chosen type (all when `types` is None or empty)."""
    chosen = list(types) if types else list(trigger_types())
    unknown = sorted(set(chosen) - set(trigger_types()))
    if unknown:
        raise ValueError(f"unknown trigger types: {', '.join(unknown)}")
    return [f"{topic_prefix}triggers.{t}" for t in chosen]


def _expired(trigger: Mapping[str, Any], now_s: float) -> bool:
    text = trigger.get("expires_at")
    if not isinstance(text, str):
        return False
    try:
        return parse_rfc3339_ms(text) <= now_s * 1000
    except ValueError:
        return False


def dead_letter(
    *,
    reason: str,
    detail: str,
    result: DeliveryResult | None,
    url: str,
    topic: str,
    partition: int,
    offset: int,
    original: bytes | None,
) -> bytes:
    """The JSON dead-letter record for a trigger the sink gave up on."""
    raw = original or b""
    record: dict[str, Any] = {
        "reason": reason,
        "detail": detail,
        "attempts": result.attempts if result else 0,
        "last_status": result.last_status if result else None,
        "url": url,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "original": raw.decode("utf-8", errors="replace"),
        "dead_lettered_at": format_rfc3339_ms(int(time.time() * 1000)),
    }
    return json.dumps(record, separators=(",", ":")).encode()


def run_webhook_sink(
    bootstrap: str,
    url: str,
    secret: bytes | str,
    types: Iterable[str] | None = None,
    topic_prefix: str = "",
    group_id: str = "engage-webhook",
    dlq_topic: str = DEFAULT_DLQ_TOPIC,
    stop_after: int | None = None,
    *,
    idle_timeout_s: float | None = None,
    max_attempts: int = 5,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 30.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    metrics: Metrics | None = None,
    deliveries_counter: Counter | None = None,
    stop_event: threading.Event | None = None,
    auto_offset_reset: str = "earliest",
    poll_timeout_ms: int = 500,
    kafka_client: Mapping[str, Any] | None = None,
) -> SinkStats:
    """Consume trigger topics and deliver each treatment trigger to `url`.

    `metrics.webhook_deliveries` (or `deliveries_counter`, any Counter with an `outcome` label)
    gets one increment per record: delivered, failed (dead-lettered after the last attempt),
    malformed (dead-lettered unread) or skipped_control.
    Ends after `stop_after` records (control ones included), after `idle_timeout_s` seconds
    without a record, or when `stop_event` is set; otherwise runs until interrupted.
    `kafka_client`: security settings for both Kafka clients (streams.kafka_security).
    The DLQ topic (`topic_prefix + dlq_topic`) must exist: topics are never auto-created.
    """
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata, TopicPartition

    key = secret.encode() if isinstance(secret, str) else secret
    delivery = WebhookDelivery(
        url, key, timeout_s=timeout_s, max_attempts=max_attempts,
        backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s, sleep=sleep,
    )
    counter = deliveries_counter
    if counter is None and metrics is not None:
        counter = metrics.webhook_deliveries

    def count(outcome: str) -> None:
        if counter is not None:
            counter.labels(outcome=outcome).inc()

    topics = trigger_topics(types, topic_prefix)
    dlq = f"{topic_prefix}{dlq_topic}"
    stats = SinkStats()
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        **(kafka_client or {}),
    )
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, **(kafka_client or {})
    )
    log.info("webhook sink: %s -> %s (dead letters to %s)", ", ".join(topics), url, dlq)

    def handle(record: Any) -> None:
        """Deliver, skip or dead-letter one record; returns once it is safe to commit."""
        raw: bytes | None = record.value
        try:
            trigger = json.loads(raw or b"")
            if not isinstance(trigger, dict) or not isinstance(trigger.get("trigger_id"), str):
                raise ValueError("not a JSON object with a string trigger_id")
        except (ValueError, UnicodeDecodeError) as exc:
            stats.malformed += 1
            count("malformed")
            send_dead_letter("malformed", str(exc), None, record)
            return
        if trigger.get("variant") == "control":
            stats.skipped_control += 1
            count("skipped_control")
            return
        if _expired(trigger, time.time()):
            stats.expired += 1
            log.info("trigger %s is past expires_at; delivering anyway", trigger["trigger_id"])
        assert raw is not None
        result = delivery.deliver(raw, trigger["trigger_id"])
        stats.results.append(result)
        if result.delivered:
            stats.delivered += 1
            count("delivered")
            return
        log.warning(
            "webhook delivery of %s failed after %d attempts (%s)",
            trigger["trigger_id"], result.attempts, result.error,
        )
        count("failed")
        send_dead_letter("delivery_failed", result.error or "", result, record)

    def send_dead_letter(
        reason: str, detail: str, result: DeliveryResult | None, record: Any
    ) -> None:
        value = dead_letter(
            reason=reason, detail=detail, result=result, url=url, topic=record.topic,
            partition=record.partition, offset=record.offset, original=record.value,
        )
        # Wait for the broker's ack: the offset is committed right after this.
        producer.send(dlq, key=record.key, value=value).get(timeout=30)
        stats.dead_lettered += 1

    def commit(pending: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if not pending:
            return
        try:
            consumer.commit(dict(pending))
        except Exception as exc:  # e.g. a rebalance: records are redelivered, receivers dedupe
            log.warning("offset commit failed (%s); records may be delivered again", exc)
        pending.clear()

    pending: dict[TopicPartition, OffsetAndMetadata] = {}
    last_record_at = time.monotonic()
    try:
        while not (stop_event is not None and stop_event.is_set()):
            if stop_after is not None and stats.consumed >= stop_after:
                break
            batches = consumer.poll(timeout_ms=poll_timeout_ms)
            if not batches:
                idle_s = time.monotonic() - last_record_at
                if idle_timeout_s is not None and idle_s > idle_timeout_s:
                    log.info("webhook sink idle for %.1fs; stopping", idle_timeout_s)
                    break
                continue
            last_record_at = time.monotonic()
            done = False
            for tp, records in batches.items():
                for record in records:
                    handle(record)
                    stats.consumed += 1
                    pending[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                    if stop_after is not None and stats.consumed >= stop_after:
                        done = True
                        break
                    if stop_event is not None and stop_event.is_set():
                        done = True
                        break
                if done:
                    break
            commit(pending)
            if done:
                break
    finally:
        commit(pending)
        producer.flush(timeout=10)
        producer.close(timeout=10)
        consumer.close(autocommit=False)
    return stats


# --------------------------------------------------------------------------- CLI



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the `webhook` command."""
    parser.add_argument(
        "--broker", default=None,
        help=f"Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or {DEFAULT_BROKER})",
    )
    parser.add_argument("--url", required=True, help="webhook endpoint (http or https)")
    parser.add_argument(
        "--secret", default=None,
        help=f"HMAC signing secret (default ${SECRET_ENV}; prefer the variable)",
    )
    parser.add_argument(
        "--types", default="",
        help="comma-separated trigger types (default all: " + ",".join(trigger_types()) + ")",
    )
    parser.add_argument("--topic-prefix", default=os.environ.get("ENGAGE_TOPIC_PREFIX", ""))
    parser.add_argument("--group-id", default="engage-webhook")
    parser.add_argument("--dlq-topic", default=DEFAULT_DLQ_TOPIC,
                        help="dead-letter topic, after the prefix")
    parser.add_argument("--max-attempts", type=positive_int, default=5)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds per HTTP attempt")


def run(args: argparse.Namespace) -> int:
    """Run the sink until Ctrl-C or SIGTERM. 0 on a clean stop, 2 on misuse."""
    secret = args.secret or os.environ.get(SECRET_ENV, "")
    if not secret:
        print(f"webhook: a secret is required (--secret or ${SECRET_ENV})", file=sys.stderr)
        return 2
    types = [t.strip() for t in (args.types or "").split(",") if t.strip()]
    try:
        trigger_topics(types, args.topic_prefix)
        WebhookDelivery(args.url, secret.encode(), max_attempts=args.max_attempts)
    except ValueError as exc:
        print(f"webhook: {exc}", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("webhook: --timeout must be > 0", file=sys.stderr)
        return 2
    broker = args.broker or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BROKER)
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main else None
    try:
        stats = run_webhook_sink(
            broker, args.url, secret, types or None, topic_prefix=args.topic_prefix,
            group_id=args.group_id, dlq_topic=args.dlq_topic, max_attempts=args.max_attempts,
            timeout_s=args.timeout, stop_event=stop,
            kafka_client=getattr(args, "kafka_client", None),
        )
    except KeyboardInterrupt:
        return 0
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    print(
        f"webhook: consumed {stats.consumed}, delivered {stats.delivered}, "
        f"dead-lettered {stats.dead_lettered}, control skipped {stats.skipped_control}",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="engage-webhook", description=summary)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
