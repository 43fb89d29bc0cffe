"""Webhook signing and delivery, against a real loopback HTTP server (no Kafka)."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sinks.webhook import (
    SIGNATURE_HEADER,
    TRIGGER_ID_HEADER,
    WebhookDelivery,
    add_arguments,
    run,
    sign,
    trigger_topics,
    verify,
)

SECRET = b"s3cret-for-tests"
BODY = json.dumps({"trigger_id": "t-1", "type": "milestone", "variant": "treatment"}).encode()


@dataclass
class Received:
    body: bytes
    signature: str | None
    trigger_id: str | None
    content_type: str | None


@dataclass
class Loopback:
    url: str
    received: list[Received] = field(default_factory=list)


@contextlib.contextmanager
def _serve(decide: Callable[[int, Received], int]) -> Iterator[Loopback]:
    """A loopback server; `decide(n, request)` gives the status for the n-th (1-based) POST."""
    lock = threading.Lock()
    state = Loopback(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            req = Received(
                body=self.rfile.read(length),
                signature=self.headers.get(SIGNATURE_HEADER),
                trigger_id=self.headers.get(TRIGGER_ID_HEADER),
                content_type=self.headers.get("Content-Type"),
            )
            with lock:
                state.received.append(req)
                status = decide(len(state.received), req)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _delivery(url: str, sleeps: list[float], **kw: object) -> WebhookDelivery:
    return WebhookDelivery(
        url, SECRET, timeout_s=5.0, sleep=sleeps.append, rng=random.Random(7), **kw  # type: ignore[arg-type]
    )


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


# ------------------------------------------------------------------ delivery


@pytest.fixture
def flaky_server() -> Iterator[Loopback]:
    """503 for the first two requests, then 200."""
    with _serve(lambda n, _req: 503 if n <= 2 else 200) as server:
        yield server


def test_delivery_retries_5xx_then_succeeds(flaky_server: Loopback) -> None:
    sleeps: list[float] = []
    result = _delivery(flaky_server.url, sleeps, max_attempts=5).deliver(BODY, "t-1")
    assert result.delivered
    assert result.attempts == 3
    assert result.last_status == 200
    assert result.error is None
    assert len(sleeps) == 2
    assert len(flaky_server.received) == 3
    for req in flaky_server.received:
        assert req.body == BODY
        assert req.trigger_id == "t-1"
        assert req.content_type == "application/json"
        assert verify(SECRET, req.body, req.signature)  # checked as a receiver would
        assert not verify(b"wrong", req.body, req.signature)


def test_delivery_does_not_retry_400() -> None:
    with _serve(lambda _n, _req: 400) as server:
        sleeps: list[float] = []
        result = _delivery(server.url, sleeps, max_attempts=5).deliver(BODY, "t-1")
        assert not result.delivered
        assert result.attempts == 1
        assert result.last_status == 400
        assert sleeps == []
        assert len(server.received) == 1


def test_delivery_retries_429() -> None:
    with _serve(lambda n, _req: 429 if n == 1 else 204) as server:
        sleeps: list[float] = []
        result = _delivery(server.url, sleeps).deliver(BODY, "t-1")
        assert result.delivered and result.attempts == 2 and result.last_status == 204


def test_delivery_gives_up_after_max_attempts() -> None:
    with _serve(lambda _n, _req: 500) as server:
        sleeps: list[float] = []
        delivery = _delivery(server.url, sleeps, max_attempts=4, backoff_base_s=1.0,
                             backoff_max_s=3.0)
        result = delivery.deliver(BODY, "t-1")
        assert not result.delivered
        assert result.attempts == 4
        assert result.last_status == 500
        assert result.error == "HTTP 500"
        assert len(server.received) == 4
        assert len(sleeps) == 3  # no sleep after the last attempt
        ceilings = [1.0, 2.0, 3.0]  # base * 2**(n-1), capped at backoff_max_s
        assert all(0.0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def test_delivery_connection_refused_is_retried() -> None:
    # A port that was just free: nothing listens there any more.
    url = ""
    with _serve(lambda _n, _req: 200) as server:
        url = server.url
    sleeps: list[float] = []
    result = _delivery(url, sleeps, max_attempts=3).deliver(BODY, "t-1")
    assert not result.delivered
    assert result.attempts == 3
    assert result.last_status is None
    assert result.error is not None and "connection error" in result.error


def test_delivery_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError):
        WebhookDelivery("file:///etc/passwd", SECRET)
    with pytest.raises(ValueError):
        WebhookDelivery("http://127.0.0.1/", b"")


def test_trigger_topics() -> None:
    assert trigger_topics(["milestone"], "t1.") == ["t1.triggers.milestone"]
    from scoring.triggers.registry import trigger_types

    assert len(trigger_topics(None)) == len(trigger_types())
    with pytest.raises(ValueError):
        trigger_topics(["nope"])


def test_cli_requires_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGAGE_WEBHOOK_SECRET", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--url", "http://127.0.0.1:1/"])) == 2
    args = parser.parse_args(["--url", "http://127.0.0.1:1/", "--secret", "x", "--types", "bad"])
    assert run(args) == 2
