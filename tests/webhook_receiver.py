"""A real loopback webhook receiver for tests and benchmarks (HTTP/1.1, keep-alive, threads).

`policy(n, request)` decides the answer to the n-th POST (1-based): a status, or a `Reply`
with a delay and headers. It runs in the request's own thread, so it may block.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sinks.webhook_signing import SIGNATURE_HEADER, TRIGGER_ID_HEADER


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Received:
    """One POST as the receiver saw it, and how it was answered."""

    body: bytes
    headers: dict[str, str]
    client_port: int
    arrived_at: float = field(default_factory=time.monotonic)
    status: int = 0
    answered: bool = False  # the whole answer was written (the client was still there)

    @property
    def trigger_id(self) -> str | None:
        return self.headers.get(TRIGGER_ID_HEADER.lower())

    @property
    def signature(self) -> str | None:
        return self.headers.get(SIGNATURE_HEADER.lower())

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


Policy = Callable[[int, Received], "Reply | int"]


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    max_concurrent: int = 0

    def delivered(self) -> collections.Counter[str]:
        """Trigger ids answered 2xx, with how many times each."""
        return collections.Counter(
            str(r.trigger_id) for r in self.received if r.answered and 200 <= r.status < 300
        )


@contextmanager
def serve(policy: Policy = lambda _n, _req: 200) -> Iterator[Receiver]:
    lock = threading.Lock()
    state = Receiver()
    in_flight = 0

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            nonlocal in_flight
            length = int(self.headers.get("Content-Length", "0"))
            request = Received(
                body=self.rfile.read(length),
                headers={k.lower(): v for k, v in self.headers.items()},
                client_port=self.client_address[1],
            )
            with lock:
                state.received.append(request)
                n = len(state.received)
                in_flight += 1
                state.max_concurrent = max(state.max_concurrent, in_flight)
            try:
                decided = policy(n, request)
                reply = decided if isinstance(decided, Reply) else Reply(decided)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                request.status = reply.status
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.wfile.flush()
                request.answered = True
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its timeout)
            finally:
                with lock:
                    in_flight -= 1

        def log_message(self, format: str, *args: object) -> None:
            pass

        def log_error(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
