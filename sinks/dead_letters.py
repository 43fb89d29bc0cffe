"""Dead-letter records: the original bytes, the reason, and where they came from."""

from __future__ import annotations

import base64
import time
from typing import Any

import msgspec

from scoring.timeutil import format_rfc3339_ms


def dead_letter_record(
    *,
    reason: str,
    detail: str,
    original: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None = None,
    now_ms: int | None = None,
) -> bytes:
    """A JSON dead-letter record; original bytes kept as text, or base64 when not UTF-8."""
    record: dict[str, Any] = {
        "reason": reason,
        "detail": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "dead_lettered_at": format_rfc3339_ms(
            now_ms if now_ms is not None else int(time.time() * 1000)
        ),
    }
    record.update(_bytes_field("original", original or b""))
    if key is not None:
        record.update(_bytes_field("key", key))
    return msgspec.json.encode(record)


def _bytes_field(name: str, raw: bytes) -> dict[str, str]:
    try:
        return {name: raw.decode("utf-8"), f"{name}_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {name: base64.b64encode(raw).decode("ascii"), f"{name}_encoding": "base64"}
