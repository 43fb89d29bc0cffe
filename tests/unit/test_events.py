"""The event contract v1: what is accepted, and the reason code for each rejection."""

from __future__ import annotations

import json

import pytest

from scoring.config import load_config
from scoring.events import EventRules, InvalidEvent, decode_event

RULES = EventRules.from_config(load_config())
NOW = 1_767_225_600_000 + 30 * 86_400_000


def good(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "event_id": "e1",
        "user_id": "u1",
        "type": "purchase",
        "ts": "2026-01-05T10:00:00.250+01:00",
        "properties": {"amount": 12.5, "quantity": 2, "sku": "extra properties are kept"},
    }
    body.update(overrides)
    return json.dumps(body).encode()


def reason(raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw, now_ms=NOW, rules=RULES)
    return info.value.reason


def test_valid_event_with_offset_timestamp() -> None:
    event = decode_event(good(), now_ms=NOW, rules=RULES)
    assert (event.user_id, event.type, event.amount) == ("u1", "purchase", 12.5)
    assert event.ts_ms == 1_767_603_600_250  # 09:00:00.250Z


def test_epoch_milliseconds_are_accepted() -> None:
    assert (
        decode_event(good(ts=1_767_603_600_250), now_ms=NOW, rules=RULES).ts_ms == 1_767_603_600_250
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({"event_id": "e", "user_id": "u", "type": "like"}).encode(), "missing_field"),
        (good(user_id=42), "wrong_type"),
        (good(ts=1.5), "bad_timestamp"),
        (good(properties={"amount": "ten"}), "wrong_type"),
        (good(event_id=""), "invalid_field"),
        (good(properties={"rating": 9}), "invalid_field"),
        (good(type="teleport"), "unknown_type"),
        (good(ts="2026-01-05T10:00:00"), "bad_timestamp"),
        (good(ts="yesterday"), "bad_timestamp"),
        (good(ts=1_767_603_600), "bad_timestamp"),  # seconds, not milliseconds
        (good(ts=NOW + 3_600_000), "future_timestamp"),
        (good(properties={"note": "x" * 20_000}), "oversized"),
    ],
)
def test_each_rejection_has_its_reason(raw: bytes, expected: str) -> None:
    assert reason(raw) == expected


def test_event_types_come_from_config() -> None:
    from scoring.config import config_from_dict

    config = config_from_dict({"event_types": {"teleport": {"weights": {"activity": 1.0}}}})
    rules = EventRules.from_config(config)
    assert decode_event(good(type="teleport"), now_ms=NOW, rules=rules).type == "teleport"


def test_the_timestamp_floor_is_2000_by_default_and_names_its_key() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(good(ts="1999-12-31T23:59:59.999Z"), now_ms=NOW, rules=RULES)
    assert info.value.reason == "bad_timestamp"
    assert "before 2000-01-01T00:00:00.000Z (events.min_timestamp" in info.value.detail
    assert decode_event(good(ts="2000-01-01T00:00:00Z"), now_ms=NOW, rules=RULES).ts_ms == (
        946_684_800_000
    )


@pytest.mark.parametrize("floor", ["1997-01-01T00:00:00Z", "1997-01-01T01:00:00+01:00"])
def test_an_earlier_floor_accepts_older_histories(floor: str) -> None:
    from scoring.config import config_from_dict

    rules = EventRules.from_config(config_from_dict({"events": {"min_timestamp": floor}}))
    assert rules.min_ts_ms == 852_076_800_000
    cdnow = decode_event(good(ts="1997-01-01T12:00:00Z"), now_ms=NOW, rules=rules)
    assert cdnow.ts_ms == 852_076_800_000 + 12 * 3_600_000
    with pytest.raises(InvalidEvent, match=r"before 1997-01-01T00:00:00\.000Z"):
        decode_event(good(ts=852_076_799_999), now_ms=NOW, rules=rules)
