"""Event-time helpers: epoch milliseconds in, RFC 3339 out, and the units of time."""

from __future__ import annotations

from datetime import UTC, datetime

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

_day_prefix: dict[int, str] = {}
_CLOCK_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_CLOCK_SECONDS = tuple(f"{s:02d}." for s in range(60))
_CLOCK_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))


def format_rfc3339_ms(epoch_ms: int) -> str:
    """`2026-01-05T13:04:05.123Z`: UTC, millisecond precision, as every contract uses.

    Hot (every score record, trigger, churn example and simulated event), so the date part
    is cached per day and the time of day is put together from tables.
    """
    day, rem = divmod(epoch_ms, MS_PER_DAY)
    prefix = _day_prefix.get(day)
    if prefix is None:
        prefix = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%dT")
        if len(_day_prefix) < 100_000:
            _day_prefix[day] = prefix
    secs, milli = divmod(rem, 1000)
    mins, secs = divmod(secs, 60)
    return prefix + _CLOCK_MINUTES[mins] + _CLOCK_SECONDS[secs] + _CLOCK_MILLIS[milli]


def parse_rfc3339_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp that carries an offset (or `Z`)."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset (add 'Z')")
    return round(dt.timestamp() * 1000)
