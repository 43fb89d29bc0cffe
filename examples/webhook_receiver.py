"""A webhook endpoint for `engage webhook`: verifies each request's signature, prints the trigger.

The compose stack (deploy/compose) runs it as the sink's target; copy it as the start of your
own receiver. It answers 401 to a request whose `X-Engage-Signature` does not verify, and 200
otherwise; dedupe on `trigger_id` before acting (delivery is at-least-once).

    ENGAGE_WEBHOOK_SECRET=... python examples/webhook_receiver.py --port 8080
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sinks.webhook import SECRET_ENV, SIGNATURE_HEADER, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    secret = os.environ[SECRET_ENV].encode()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if not verify(secret, body, self.headers.get(SIGNATURE_HEADER)):
                self.send_response(401)
                self.end_headers()
                return
            trigger = json.loads(body)
            print(f"{trigger['type']:<22} {trigger['user_id']:<12} {trigger['trigger_id']}",
                  flush=True)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per trigger is enough

    ThreadingHTTPServer((args.bind, args.port), Receiver).serve_forever()


if __name__ == "__main__":
    main()
