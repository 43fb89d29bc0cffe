"""Small builders shared by the tests."""

from __future__ import annotations

import itertools
import json
from typing import Any

from scoring.events import Event, Properties

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000

_ids = itertools.count()


def ev(user: str, type_: str, ts: int, event_id: str | None = None, amount: float = 0.0) -> Event:
    props = Properties(amount=amount) if amount else None
    return Event(event_id or f"e{next(_ids)}", user, type_, ts, amount, None, props)


def wire(user: str, type_: str, ts: int, event_id: str | None = None, **props: Any) -> bytes:
    body: dict[str, Any] = {
        "event_id": event_id or f"w{next(_ids)}", "user_id": user, "type": type_, "ts": ts,
    }
    if props:
        body["properties"] = props
    return json.dumps(body).encode()
