"""Dead-letter records: the original bytes, the reason, and where they came from.

A dead letter must always be writable, whatever it carries: the original value is kept up
to `MAX_ORIGINAL_BYTES` (with its full size and SHA-256, and `original_truncated`), the
detail up to `MAX_DETAIL_CHARS`, so a record stays far below the producer's 1 MiB limit even
when every byte needs a six-character JSON escape. A missing value (`null`, a tombstone) and
an empty one are told apart by `original_encoding`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import msgspec

from scoring.timeutil import format_rfc3339_ms

MAX_ORIGINAL_BYTES = 64 * 1024
MAX_KEY_BYTES = 1024
MAX_DETAIL_CHARS = 2000


def dead_letter_record(
    *,
    reason: str,
    detail: str,
    original: bytes | None,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None = None,
    now_ms: int | None = None,
) -> bytes:
    """A JSON dead-letter record (scoring/schemas/dead-letter.v1.json); `partition` and
    `offset` are None for an output that was never read from a topic."""
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + f"... ({len(detail)} characters)"
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
    record.update(_bytes_field("original", original, MAX_ORIGINAL_BYTES))
    if key is not None:
        record.update(_bytes_field("key", key, MAX_KEY_BYTES))
    return msgspec.json.encode(record)


def _bytes_field(name: str, raw: bytes | None, limit: int) -> dict[str, Any]:
    if raw is None:
        return {name: None, f"{name}_encoding": "null"}
    out: dict[str, Any] = {}
    kept = raw
    if len(raw) > limit:
        kept = raw[:limit]
        out.update({
            f"{name}_truncated": True,
            f"{name}_size": len(raw),
            f"{name}_sha256": hashlib.sha256(raw).hexdigest(),
        })
    try:
        out.update({name: kept.decode("utf-8"), f"{name}_encoding": "utf-8"})
    except UnicodeDecodeError:
        out.update({name: base64.b64encode(kept).decode("ascii"), f"{name}_encoding": "base64"})
    return out
