"""Webhook signing and delivery, against a real loopback HTTP server (no Kafka)."""

from __future__ import annotations

import base64
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sinks.webhook_delivery import Attempt, RetryPolicy, WebhookDelivery, retry_after_s
from sinks.webhook_metrics import WebhookMetrics
from sinks.webhook_signing import Signer, sign, standard_webhooks_secret, verify
from tests.webhook_receiver import Receiver, Reply, serve

SECRET = b"s3cret-for-tests"
BODY = json.dumps({"trigger_id": "t-1", "type": "milestone", "variant": "treatment"}).encode()


class Sleeps(list[float]):
    """Records backoff delays instead of waiting them out."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _delivery(
    url: str, sleeps: Sleeps, policy: RetryPolicy | None = None,
    metrics: WebhookMetrics | None = None,
) -> WebhookDelivery:
    return WebhookDelivery(url, Signer(SECRET), policy or RetryPolicy(timeout_s=5.0),
                           sleep=sleeps, metrics=metrics)


Outcome = tuple[bool, int, int | None, str | None]


async def _deliver(server: Receiver, sleeps: Sleeps, policy: RetryPolicy | None = None) -> Outcome:
    async with _delivery(server.url, sleeps, policy) as delivery:
        r = await delivery.deliver(BODY, "t-1")
    return r.delivered, r.attempts, r.last_status, r.error


# ------------------------------------------------------------------ signatures


def test_sign_verify_round_trip() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, BODY, header, now=1_700_000_010)


def test_verify_refuses_tampering_and_wrong_secret() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    now = 1_700_000_000
    assert not verify(SECRET, BODY + b" ", header, now=now)
    assert not verify(b"other", BODY, header, now=now)
    forged_ts = header.replace("t=1700000000", "t=1700000001")
    assert not verify(SECRET, BODY, forged_ts, now=now)
    assert not verify(SECRET, BODY, header[:-1] + ("0" if header[-1] != "0" else "1"), now=now)


def test_verify_refuses_stale_and_malformed() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    assert not verify(SECRET, BODY, header, tolerance_s=300, now=1_700_000_301)
    assert not verify(SECRET, BODY, header, tolerance_s=300, now=1_699_999_699)
    for bad in (None, "", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1,,v1=x"):
        assert not verify(SECRET, BODY, bad, now=1_700_000_000)


def test_verify_accepts_any_of_several_v1_values() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    old = sign(b"old", BODY, 1_700_000_000).rpartition("v1=")[2]
    assert verify(SECRET, BODY, f"{header},v1={old}", now=1_700_000_000)


def test_standard_webhooks_headers_match_the_specification_example() -> None:
    # The example of the Standard Webhooks specification: key, id, timestamp, body, signature.
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    headers = Signer(key, standard_webhooks=True).headers(
        body, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    )
    assert headers["webhook-id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    assert headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert headers["X-Engage-Signature"] == sign(key, body, 1614265330)
    assert standard_webhooks_secret(key) == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_standard_webhooks_headers_only_when_asked() -> None:
    assert set(Signer(SECRET).headers(BODY, "t-1", 1_700_000_000)) == {"X-Engage-Signature"}
    with pytest.raises(ValueError):
        Signer(b"")


async def test_standard_webhooks_receiver_library_verifies_what_is_sent() -> None:
    with serve() as server:
        async with WebhookDelivery(server.url, Signer(SECRET, standard_webhooks=True)) as d:
            assert (await d.deliver(BODY, "t-1")).delivered
    [req] = server.received
    receiver = Webhook(standard_webhooks_secret(SECRET))
    assert receiver.verify(req.body, req.headers) == json.loads(BODY)
    assert req.headers["webhook-id"] == "t-1"
    with pytest.raises(WebhookVerificationError):
        Webhook(standard_webhooks_secret(b"other")).verify(req.body, req.headers)


# ------------------------------------------------------------------ delivery


async def test_delivery_retries_5xx_then_succeeds() -> None:
    """503 for the first two requests, then 200."""
    with serve(lambda n, _req: 503 if n <= 2 else 200) as server:
        sleeps = Sleeps()
        assert await _deliver(server, sleeps) == (True, 3, 200, None)
    assert len(sleeps) == 2
    assert len(server.received) == 3
    for req in server.received:
        assert req.body == BODY
        assert req.trigger_id == "t-1"
        assert req.content_type == "application/json"
        assert req.headers["user-agent"] == "engage-webhook/1"
        assert verify(SECRET, req.body, req.signature)  # checked as a receiver would
        assert not verify(b"wrong", req.body, req.signature)


async def test_delivery_does_not_retry_400() -> None:
    with serve(lambda _n, _req: 400) as server:
        sleeps = Sleeps()
        assert await _deliver(server, sleeps) == (False, 1, 400, "HTTP 400")
        assert sleeps == []
        assert len(server.received) == 1


async def test_delivery_does_not_follow_redirects() -> None:
    moved = Reply(302, headers=(("Location", "http://127.0.0.1:1/elsewhere"),))
    with serve(lambda _n, _req: moved) as server:
        sleeps = Sleeps()
        assert await _deliver(server, sleeps) == (False, 1, 302, "HTTP 302")
        assert sleeps == []
        assert len(server.received) == 1


async def test_delivery_retries_429() -> None:
    with serve(lambda n, _req: 429 if n == 1 else 204) as server:
        sleeps = Sleeps()
        assert await _deliver(server, sleeps) == (True, 2, 204, None)


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    def policy(n: int, _req: object) -> Reply:
        retry_after = {1: "2", 2: "100"}.get(n)
        return Reply(429, headers=(("Retry-After", retry_after),)) if retry_after else Reply(200)

    with serve(policy) as server:
        sleeps = Sleeps()
        result = await _deliver(
            server, sleeps, RetryPolicy(timeout_s=5, backoff_base_s=0.01, backoff_max_s=5.0)
        )
    assert result == (True, 3, 200, None)
    assert sleeps == [2.0, 5.0]  # jitter stays below 0.02 here; Retry-After 100 capped at 5


def test_retry_after_forms() -> None:
    assert retry_after_s("3", now_s=0) == 3.0
    assert retry_after_s("-1", now_s=0) == 0.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0
    assert retry_after_s("soon", now_s=0) is None
    assert retry_after_s(None, now_s=0) is None


async def test_delivery_gives_up_after_max_attempts() -> None:
    with serve(lambda _n, _req: 500) as server:
        sleeps = Sleeps()
        policy = RetryPolicy(max_attempts=4, timeout_s=5, backoff_base_s=1.0, backoff_max_s=3.0)
        result = await _deliver(server, sleeps, policy)
        assert result == (False, 4, 500, "HTTP 500")
        assert len(server.received) == 4
    assert len(sleeps) == 3  # no sleep after the last attempt
    ceilings = [1.0, 2.0, 3.0]  # base * 2**(n-1), capped at backoff_max_s
    assert all(0.0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


async def test_delivery_connection_refused_is_retried() -> None:
    # A port that was just free: nothing listens there any more.
    with serve() as server:
        url = server.url
    sleeps = Sleeps()
    async with _delivery(url, sleeps, RetryPolicy(max_attempts=3, timeout_s=5)) as delivery:
        result = await delivery.deliver(BODY, "t-1")
    assert not result.delivered
    assert result.attempts == 3
    assert result.last_status is None
    assert result.error is not None and "connection error" in result.error


async def test_delivery_timeout_is_retried_and_counted() -> None:
    def policy(n: int, _req: object) -> Reply:
        return Reply(200, delay_s=1.0) if n == 1 else Reply(200)

    metrics = WebhookMetrics()
    with serve(policy) as server:
        sleeps = Sleeps()
        async with _delivery(server.url, sleeps, RetryPolicy(timeout_s=0.2), metrics) as delivery:
            result = await delivery.deliver(BODY, "t-1")
    assert (result.delivered, result.attempts, result.last_status) == (True, 2, 200)
    sample = metrics.registry.get_sample_value
    assert sample("engage_webhook_attempts_total", {"result": "timeout"}) == 1
    assert sample("engage_webhook_attempts_total", {"result": "2xx"}) == 1
    assert sample("engage_webhook_request_duration_seconds_count") == 2
    assert sample("engage_webhook_delivery_duration_seconds_count") == 1


def test_attempt_labels() -> None:
    assert [Attempt(s, None).result_label for s in (200, 302, 404, 429, 503)] == [
        "2xx", "3xx", "4xx", "429", "5xx"
    ]
    assert Attempt(None, "x", timed_out=True).result_label == "timeout"
    assert Attempt(None, "x").result_label == "connection_error"
    assert [Attempt(s, None).retryable for s in (None, 200, 302, 404, 429, 500)] == [
        True, False, False, False, True, True
    ]


def test_delivery_refuses_non_http_urls() -> None:
    for bad in ("file:///etc/passwd", "ftp://127.0.0.1/", "http://", "not a url"):
        with pytest.raises(ValueError):
            WebhookDelivery(bad, Signer(SECRET))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(timeout_s=0)


async def test_public_url_hides_credentials_and_query() -> None:
    async with WebhookDelivery("https://user:pw@example.invalid:8443/hook?token=abc",
                               Signer(SECRET)) as delivery:
        assert delivery.public_url == "https://example.invalid:8443/hook"
