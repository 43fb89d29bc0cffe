"""Stored state across releases: version 1 (engage 0.1, positional) migrates on read to the
same scores; the current layout round-trips; newer or foreign bytes are refused clearly."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest

from scoring.config import config_from_dict, load_config
from scoring.partition_state import (
    PartitionState,
    PartitionStateVersionError,
    decode_partition_state,
    encode_partition_state,
)
from scoring.state import STATE_VERSION, UserState
from scoring.state_codec import StateCodec, StateVersionError, codec_for, encode_state
from tests.helpers import ReadBack

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "state_v1.json"
CONFIG = load_config(None)
# The fixture's records were written by engage 0.1, whose scores were absolute: pinned here
# (the default calibration is the population's since issue #13).
ABSOLUTE = config_from_dict({"scoring": {"calibration": "absolute"}})
V2_ONLY = ("calibration", "absolute_score", "percentiles", "reference", "tier_reason",
           "satisfaction")


def as_v1(record: dict) -> dict:  # type: ignore[type-arg]
    """An engagement-score/v2 record read as the v1 record it extends: the v2-only fields
    left out; stickiness is null in v2 until the user's 28-day window is filled."""
    old = {k: v for k, v in record.items() if k not in V2_ONLY}
    old["schema"] = "engagement-score/v1"
    return old


def _fixture() -> dict:  # type: ignore[type-arg]
    return json.loads(FIXTURE.read_text())  # type: ignore[no-any-return]


def test_version_1_state_decodes_to_the_scores_it_had() -> None:
    doc = _fixture()
    codec = codec_for(ABSOLUTE)
    engine = ReadBack(ABSOLUTE)
    assert len(doc["users"]) == 60
    short = 0
    for user in doc["users"]:
        raw = base64.b64decode(user["state_b64"])
        assert raw[0] in range(0x90, 0xA0) or raw[0] in (0xDC, 0xDD)  # positional v1
        state = codec.decode(raw)
        record = engine.score_record(state, user["user_id"], doc["as_of_ms"])
        assert record["calibration"] == "absolute"
        assert record["engagement_score"] == record["absolute_score"]
        old = user["score_record"]
        if record["tenure_days"] < 28:
            assert record["windows"]["stickiness"] is None
            record["windows"]["stickiness"] = old["windows"]["stickiness"]
            short += 1
        # every field the old release published has the same value (v2 names its schema and
        # leaves a short tenure's stickiness null); newer fields add to it
        assert as_v1({k: record[k] for k in old}) == old
        # written again in today's layout, it reads back the same
        again = codec.decode(encode_state(state))
        assert again == state
    assert 0 < short < 60


def test_migration_keeps_trigger_history_and_badges_by_name() -> None:
    doc = _fixture()
    codec = codec_for(CONFIG)
    states = [codec.decode(base64.b64decode(u["state_b64"])) for u in doc["users"]]
    # version 1 keyed trigger history by position in this list; the positions are the codes
    assert doc["trigger_types_by_position"][:2] == ["reengagement_nudge", "vip_promotion"]
    assert sum(len(s.triggers.episodes) for s in states) > 60
    badge_names = {b.name for b in CONFIG.triggers.rule("milestone").badges}  # type: ignore[attr-defined]
    from scoring.state import name_hash

    by_hash = {name_hash(n): n for n in badge_names}
    earned = [by_hash[h] for s in states for h in s.triggers.badges]
    assert earned and set(earned) <= badge_names
    tiers = {s.tier for s in states}
    assert tiers <= {"", *[lv.name for lv in CONFIG.tiers.levels]} and len(tiers) > 1


def test_the_current_layout_is_a_versioned_map_with_stable_names() -> None:
    state = UserState(first_ms=5, last_ms=9, events=2, tier="gold", input_offset=41)
    raw = encode_state(state)
    as_map = msgspec.msgpack.decode(raw)
    assert as_map["v"] == STATE_VERSION
    assert as_map["t"] == "gold" and as_map["o"] == 41 and as_map["n"] == 2
    assert as_map["c"] == {"v": 1} and as_map["tr"] == {"v": 1}  # nested structs versioned too
    assert "ri" not in as_map  # defaults are not written
    assert StateCodec().decode(raw) == state


def test_a_newer_version_is_refused_with_a_clear_error() -> None:
    raw = msgspec.msgpack.encode({"v": STATE_VERSION + 1, "l": 5, "zz": [1, 2]})
    with pytest.raises(StateVersionError, match="newer engage release"):
        StateCodec().decode(raw)
    with pytest.raises(StateVersionError, match="not engage user state"):
        StateCodec().decode(b"\xc1garbage")
    with pytest.raises(StateVersionError, match="version-1"):
        StateCodec().decode(msgspec.msgpack.encode([1, "not a number"]))


def test_partition_state_round_trips_and_refuses_newer() -> None:
    state = PartitionState(max_event_ms=123, offsets={"input": 7})
    assert decode_partition_state(encode_partition_state(state)) == state
    with pytest.raises(PartitionStateVersionError):
        decode_partition_state(msgspec.msgpack.encode({"v": 2, "e": 1}))
