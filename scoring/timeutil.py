"""Event-time helpers: epoch milliseconds in, RFC 3339 out, and the units of time."""

from __future__ import annotations

from datetime import UTC, datetime

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

_day_prefix: dict[int, str] = {}


def format_rfc3339_ms(epoch_ms: int) -> str:
    """`2026-01-05T13:04:05.123Z`: UTC, millisecond precision, as every contract uses.

    Hot (every score record, trigger and simulated event), so the date part is cached per day.
    """
    day, rem = divmod(epoch_ms, MS_PER_DAY)
    prefix = _day_prefix.get(day)
    if prefix is None:
        prefix = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%dT")
        if len(_day_prefix) < 100_000:
            _day_prefix[day] = prefix
    secs, milli = divmod(rem, 1000)
    mins, secs = divmod(secs, 60)
    hours, mins = divmod(mins, 60)
    return f"{prefix}{hours:02d}:{mins:02d}:{secs:02d}.{milli:03d}Z"


def parse_rfc3339_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp that carries an offset (or `Z`)."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset (add 'Z')")
    return round(dt.timestamp() * 1000)
