"""Webhook delivery: one signed body POSTed until a 2xx, a final answer, or the last attempt.

Requests go through one pooled `httpx.AsyncClient` (keep-alive connections, shared by every
concurrent delivery) on aiohttp's connection pool (httpx-aiohttp): httpcore 1.0's own pool
spends milliseconds of CPU per request on bookkeeping with tens of connections in use and
closes keep-alive connections it should reuse (encode/httpcore#1035): with 32 deliveries in
flight against a 50 ms endpoint it made about 100 deliveries/s where aiohttp's pool made 490
(one run each, same machine and setup as benchmarks/bench_webhook.py).

Retries follow tenacity: connection errors, timeouts, 5xx and 429 are retried with exponential
backoff and full jitter; a `Retry-After` (seconds or HTTP date) on 429/503 is honoured up to
the backoff cap. Other 4xx and 3xx answers are final: redirects are not followed, so a signed
body never lands somewhere else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx
from httpx_aiohttp import AiohttpTransport
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

from sinks.webhook_metrics import WebhookMetrics
from sinks.webhook_signing import TRIGGER_ID_HEADER, Signer

log = logging.getLogger("engage.webhook")

USER_AGENT = "engage-webhook/1"


@dataclass(frozen=True)
class RetryPolicy:
    """How long one attempt may take, how many attempts, and how long to wait between them."""

    max_attempts: int = 5
    timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0  # also the cap on a Retry-After

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.timeout_s <= 0:
            raise ValueError("timeout must be > 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff must be >= 0")


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt: a status, or the error that stopped it before an answer."""

    status: int | None
    error: str | None
    retry_after_s: float | None = None
    timed_out: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """Connection errors and timeouts (no status), 5xx and 429 are worth another attempt."""
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def result_label(self) -> str:
        if self.status is None:
            return "timeout" if self.timed_out else "connection_error"
        if self.status == 429:
            return "429"
        return f"{self.status // 100}xx"


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one webhook delivery, after all its attempts."""

    delivered: bool
    attempts: int
    last_status: int | None
    error: str | None = None


def validate_url(url: str) -> None:
    """Refuse anything but an absolute http(s) URL (clear error before any traffic)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"webhook URL {url!r} is not valid: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"webhook URL must be http or https with a host, not {url!r}")


def retry_after_s(value: str | None, now_s: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta seconds or HTTP date), else None."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s) if when.tzinfo is not None else None


class WebhookDelivery:
    """POSTs signed JSON bodies to one URL over a pooled client, with retries and backoff."""

    def __init__(
        self,
        url: str,
        signer: Signer,
        policy: RetryPolicy | None = None,
        *,
        max_connections: int = 64,
        metrics: WebhookMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        validate_url(url)
        self.url = url
        # For logs and dead letters: no credentials, no query string (it may carry a token).
        self.public_url = str(
            httpx.URL(url).copy_with(username=None, password=None, query=None, fragment=None)
        )
        self.policy = policy or RetryPolicy()
        self._signer = signer
        self._metrics = metrics
        self._clock = clock
        self._jitter = wait_random_exponential(
            multiplier=self.policy.backoff_base_s, max=self.policy.backoff_max_s
        )
        self._sleep = sleep
        pool = AiohttpTransport(limits=httpx.Limits(max_connections=max_connections))
        self._client = httpx.AsyncClient(
            transport=pool,
            # pool=None: waiting for a free pooled connection is not the endpoint's fault.
            timeout=httpx.Timeout(self.policy.timeout_s, pool=None),
            follow_redirects=False,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )

    async def __aenter__(self) -> WebhookDelivery:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def backoff_s(self, state: RetryCallState) -> float:
        """Delay after a failed attempt: full jitter, capped; at least a (capped) Retry-After."""
        delay = self._jitter(state)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            attempt: Attempt = outcome.result()
            if attempt.retry_after_s is not None:
                delay = max(delay, min(attempt.retry_after_s, self.policy.backoff_max_s))
        return delay

    async def attempt(self, body: bytes, trigger_id: str) -> Attempt:
        """One signed POST (no retry)."""
        headers = {TRIGGER_ID_HEADER: trigger_id}
        headers.update(self._signer.headers(body, trigger_id, int(self._clock())))
        started = time.perf_counter()
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            # httpx-aiohttp maps some connection failures to timeout types: the aiohttp error
            # it wraps says which it was.
            cause = exc.__cause__ or exc
            if isinstance(cause, TimeoutError):
                attempt = Attempt(None, f"timeout: {type(cause).__name__}", timed_out=True)
            else:
                attempt = Attempt(None, f"connection error: {type(cause).__name__}: {cause}")
        else:
            status = response.status_code
            wait = None
            if status in (429, 503):
                wait = retry_after_s(response.headers.get("Retry-After"), self._clock())
            attempt = Attempt(status, None if 200 <= status < 300 else f"HTTP {status}", wait)
        if self._metrics is not None:
            self._metrics.attempts.labels(result=attempt.result_label).inc()
            self._metrics.request_seconds.observe(time.perf_counter() - started)
        return attempt

    async def deliver(self, body: bytes, trigger_id: str) -> DeliveryResult:
        """POST `body` until a 2xx, a final answer, or `max_attempts` attempts."""
        attempts = 0

        async def once() -> Attempt:
            nonlocal attempts
            attempts += 1
            return await self.attempt(body, trigger_id)

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=self.backoff_s,
            retry=retry_if_result(lambda attempt: not attempt.delivered and attempt.retryable),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            before_sleep=lambda state: _log_retry(state, trigger_id),
        )
        started = time.perf_counter()
        last: Attempt = await retrying(once)
        if self._metrics is not None:
            self._metrics.delivery_seconds.observe(time.perf_counter() - started)
        return DeliveryResult(last.delivered, attempts, last.status, last.error)


def _log_retry(state: RetryCallState, trigger_id: str) -> None:
    attempt = state.outcome.result() if state.outcome is not None else None
    log.debug(
        "webhook attempt %d for %s failed (%s); retrying in %.2fs",
        state.attempt_number, trigger_id, attempt.error if attempt else "?",
        state.upcoming_sleep,
    )
