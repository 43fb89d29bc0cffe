"""Webhook signatures: how a receiver knows a POST came from this sink and is fresh.

Every request carries `X-Engage-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
HMAC-SHA256(secret, f"{t}." + raw body). Receivers call `verify()` (or reimplement it) on the
raw body bytes before parsing them, and refuse stale timestamps.

Optionally the same secret also signs the Standard Webhooks headers (`webhook-id`,
`webhook-timestamp`, `webhook-signature`), so receivers can use any Standard Webhooks library
with the secret `standard_webhooks_secret(secret)` (`whsec_` + base64 of the secret's bytes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SIGNATURE_HEADER = "X-Engage-Signature"
TRIGGER_ID_HEADER = "X-Engage-Trigger-Id"
DEFAULT_TOLERANCE_S = 300


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The `X-Engage-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: bytes,
    body: bytes,
    header: str | None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
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


def standard_webhooks_secret(secret: bytes) -> str:
    """The same key in Standard Webhooks form, for receivers that use those libraries."""
    return "whsec_" + base64.b64encode(secret).decode("ascii")


class Signer:
    """Signature headers for one secret: `X-Engage-Signature`, optionally the standard ones."""

    def __init__(self, secret: bytes, *, standard_webhooks: bool = False) -> None:
        if not secret:
            raise ValueError("webhook secret must not be empty")
        self._secret = secret
        self._standard = Webhook(secret) if standard_webhooks else None

    def headers(self, body: bytes, message_id: str, timestamp: int) -> dict[str, str]:
        """Headers signing `body` at `timestamp`; `message_id` stays the same across retries.

        Standard Webhooks signs the body as text, so a body that is not UTF-8 cannot get those
        headers (the sink only sends bodies that decoded as JSON, which are UTF-8).
        """
        headers = {SIGNATURE_HEADER: sign(self._secret, body, timestamp)}
        if self._standard is not None:
            headers["webhook-id"] = message_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = self._standard.sign(
                message_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode("utf-8")
            )
        return headers
