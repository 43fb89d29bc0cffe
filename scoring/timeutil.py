"""Event-time helpers: epoch milliseconds in, RFC 3339 out."""

from __future__ import annotations

from datetime import UTC, datetime

MS_PER_SECOND = 1000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


def format_rfc3339_ms(epoch_ms: int) -> str:
    """`2026-01-05T13:04:05.123Z` — UTC, millisecond precision, as every contract uses."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def parse_rfc3339_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp that carries an offset (or `Z`)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return (
        int(dt.timestamp() * 1000) if dt.microsecond % 1000 == 0 else round(dt.timestamp() * 1000)
    )
