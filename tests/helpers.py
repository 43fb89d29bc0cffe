"""Small builders shared by the tests."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec

from scoring.engine import Outcome, ScoringEngine
from scoring.events import Event, Properties
from scoring.records import stamp

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


class ReadBack(ScoringEngine):
    """The engine, with what it emits as subscribers read it off the topics: JSON objects,
    triggers sent at wall-clock time `sent_at_ms`."""

    sent_at_ms = 0

    def _read(self, out: Outcome) -> Outcome:
        out.triggers = [  # type: ignore[misc]
            msgspec.to_builtins(
                stamp(t, self.sent_at_ms, self.config.triggers.rule(t.type).expires_hours)
            )
            for t in out.triggers
        ]
        out.examples = msgspec.to_builtins(out.examples)
        return out

    def apply(self, *args: Any, **kwargs: Any) -> Outcome:
        return self._read(super().apply(*args, **kwargs))

    def sweep(self, *args: Any, **kwargs: Any) -> Outcome:
        return self._read(super().sweep(*args, **kwargs))

    def score_record(self, *args: Any, **kwargs: Any) -> Any:
        return msgspec.to_builtins(super().score_record(*args, **kwargs))
