"""The scoring agent's logic (streams/processor.py) without a broker: routing, dead letters,
coalescing, re-keying, lateness and idle-partition ticks."""

from __future__ import annotations

import json

import pytest

from scoring.config import load_config
from scoring.partitioning import partition_for_user
from sinks.metrics import Metrics
from streams.engine_factory import build_engine
from streams.processor import BatchResult, DictStore, InputRecord, ScoringShell
from streams.topics import TopicNames
from tests.helpers import DAY, HOUR, MINUTE, T0, wire

NAMES = TopicNames()
PARTITIONS = 4
WALL = T0 + 60 * DAY


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_shell(clock: Clock | None = None) -> tuple[ScoringShell, DictStore, Metrics]:
    config = load_config()
    metrics = Metrics()
    store = DictStore(PARTITIONS)
    clock = clock or Clock(WALL)
    engine = build_engine(config, churn=None, on_suppressed=metrics.count_suppressed)
    shell = ScoringShell(config, engine, store, NAMES, PARTITIONS, metrics, wall_clock_ms=clock,
                         idle_advance_ms=60_000)
    return shell, store, metrics


offsets: dict[int, int] = {}


def rec(value: bytes, user: str | None = None, topic: str = NAMES.interactions,
        partition: int | None = None, key: bytes | None = None) -> InputRecord:
    if partition is None:
        partition = partition_for_user(user, PARTITIONS) if user else 0
    offsets[partition] = offsets.get(partition, -1) + 1
    return InputRecord(topic, partition, offsets[partition],
                       key if key is not None else (user.encode() if user else None), value)


def process(shell: ScoringShell, records: list[InputRecord]) -> BatchResult:
    """What the worker does with a batch: outputs (delivered), then the states stored."""
    result = shell.handle_batch(records)
    shell.store_batch(result)
    return result


def by_topic(outbox: list) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    out: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for r in outbox:
        out.setdefault(r.topic, []).append(json.loads(r.value))
    return out


def test_counts_balance_and_updates_are_coalesced_per_user() -> None:
    shell, store, _ = make_shell()
    records = [rec(wire(u, "like", T0 + i * 1000), u) for i in range(5) for u in ("ann", "bob")]
    teleport = wire("ann", "teleport", T0)
    records += [rec(b"{broken", "ann"), rec(teleport, "ann")]
    result = process(shell, records)
    topics = by_topic(result.outbox)
    assert result.counts == {"scored": 10, "dead_letter": 2}
    assert sorted(d["reason"] for d in topics[NAMES.dlq]) == ["malformed_json", "unknown_type"]
    assert {d["original"] for d in topics[NAMES.dlq]} == {"{broken", teleport.decode()}
    scores = topics[NAMES.scores]
    assert sorted(s["user_id"] for s in scores) == ["ann", "bob"]  # one record per user
    assert sorted(result.states) == ["ann", "bob"]  # one state write per user per batch
    assert store.states["ann"].events == 5


def test_dead_letter_keeps_non_utf8_bytes_as_base64_with_its_origin() -> None:
    shell, _, _ = make_shell()
    bad = rec(b"\xff\xfe\x01", partition=3)
    topics = by_topic(process(shell, [bad]).outbox)
    (dead,) = topics[NAMES.dlq]
    assert dead["original_encoding"] == "base64" and dead["original"] == "//4B"
    assert (dead["topic"], dead["partition"], dead["offset"]) == (NAMES.interactions, 3, bad.offset)


def test_events_keyed_otherwise_are_rekeyed_to_the_users_partition() -> None:
    shell, store, _ = make_shell()
    home = partition_for_user("carol", PARTITIONS)
    wrong = (home + 1) % PARTITIONS
    value = wire("carol", "post", T0)
    result = process(shell, [rec(value, partition=wrong, key=b"session-42")])
    assert result.counts == {"rekeyed": 1}
    (out,) = result.outbox
    assert (out.topic, out.key, out.partition, out.value) == (NAMES.rekeyed, b"carol", home, value)
    assert "carol" not in store.states
    result = process(shell, [rec(out.value, "carol", topic=NAMES.rekeyed, partition=home)])
    assert result.counts == {"scored": 1}
    assert store.states["carol"].events == 1


def test_late_events_go_to_the_dead_letter_topic() -> None:
    shell, store, _ = make_shell()
    process(shell, [rec(wire("dan", "view", T0 + 5 * HOUR), "dan")])
    result = process(shell, [rec(wire("dan", "view", T0 + 3 * HOUR), "dan")])  # 2h late
    assert result.counts == {"late": 1}
    (dead,) = by_topic(result.outbox)[NAMES.dlq]
    assert dead["reason"] == "late"
    assert store.states["dan"].events == 1


def test_idle_partition_ticks_advance_the_watermark_and_sweep_silent_users() -> None:
    clock = Clock(WALL)
    shell, _, metrics = make_shell(clock)
    p = partition_for_user("eve", PARTITIONS)
    process(shell, [rec(wire("eve", "session_start", T0 + d * DAY), "eve") for d in range(3)])
    tick = rec(b'{"tick": 1}', topic=NAMES.ticks, partition=p)
    assert process(shell, [tick]).outbox == []  # not idle long enough
    clock.now += 30 * DAY  # a month of wall-clock silence on the partition
    result = process(shell, [rec(b'{"tick": 2}', topic=NAMES.ticks, partition=p)])
    topics = by_topic(result.outbox)
    assert [s["user_id"] for s in topics[NAMES.scores]] == ["eve"]
    assert topics[NAMES.scores][0]["days_since_last_event"] > 25
    nudges = topics.get(NAMES.trigger("reengagement_nudge"), []) + [
        t for t in topics.get(NAMES.audit, []) if t["type"] == "reengagement_nudge"
    ]
    assert {t["trigger_id"] for t in nudges} and len({t["trigger_id"] for t in nudges}) == 1
    assert metrics.sweeps._value.get() >= 1


def test_a_restarted_shell_rebuilds_its_due_index_from_the_table() -> None:
    shell, store, _ = make_shell()
    process(shell, [rec(wire("fay", "view", T0 + d * DAY), "fay") for d in range(3)])
    fresh, _, _ = make_shell()
    fresh.store = store
    fresh.driver.load = store.load
    p = partition_for_user("fay", PARTITIONS)
    later = rec(wire("gus", "view", T0 + 40 * DAY), "gus", partition=p) if partition_for_user(
        "gus", PARTITIONS) == p else None
    if later is None:
        later = rec(b'{"tick": 1}', topic=NAMES.ticks, partition=p)
    process(fresh, [later])
    assert fresh.driver.index(p).due_ms("fay") is not None


def test_a_batch_stored_in_part_before_a_crash_is_applied_once_on_replay() -> None:
    """A crash while a batch's states reach the changelog: some users' states are stored,
    the partition record is not. Replaying the batch applies each record once."""
    shell, store, _ = make_shell()
    users = ["ann", "bob", "cid", "dee", "eli", "fox"]
    batch = [rec(wire(u, "like", T0 + i * MINUTE), u) for i in range(4) for u in users]
    result = shell.handle_batch(batch)
    for user_id in users[:3]:  # half the states made it; no partition record did
        store.save(user_id, partition_for_user(user_id, PARTITIONS), result.states[user_id])
    assert store.partition_states == {}
    restarted, _, _ = make_shell()
    restarted.store = store
    restarted.driver.load = store.load
    again = process(restarted, batch)
    assert {u: store.states[u].events for u in users} == dict.fromkeys(users, 4)
    assert again.counts == {"already_applied": 12, "scored": 12}
    # and once the partition record is stored, the whole batch is skipped without decoding
    assert process(restarted, batch).counts == {"already_processed": 24}


def test_a_record_that_breaks_scoring_is_dead_lettered_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shell, store, _ = make_shell()
    real_apply = shell.engine.apply

    def apply(state, event, watermark, shared=None):  # type: ignore[no-untyped-def]
        if event.user_id == "poison":
            raise ZeroDivisionError("a bug in a rule")
        return real_apply(state, event, watermark, shared)

    monkeypatch.setattr(shell.engine, "apply", apply)
    batch = [rec(wire("ann", "like", T0), "ann"), rec(wire("poison", "like", T0), "poison"),
             rec(wire("bob", "like", T0), "bob")]
    result = process(shell, batch)
    assert result.counts == {"scored": 2, "dead_letter": 1}
    (dead,) = by_topic(result.outbox)[NAMES.dlq]
    assert dead["reason"] == "processing_failed"
    assert dead["detail"] == "ZeroDivisionError: a bug in a rule"
    assert (store.states["ann"].events, store.states["bob"].events) == (1, 1)


def test_rekeyed_copies_sent_twice_around_a_crash_are_applied_once() -> None:
    shell, store, _ = make_shell()
    home = partition_for_user("carol", PARTITIONS)
    wrong = (home + 1) % PARTITIONS
    first = [
        rec(wire("carol", "post", T0 + i * MINUTE), partition=wrong, key=b"s") for i in range(3)
    ]
    copies = process(shell, first).outbox
    assert [c.headers for c in copies] == [
        [("engage-source", f"{wrong}:{r.offset}".encode())] for r in first
    ]
    # the worker died before its partition record was stored: it re-keys them again
    assert process(make_shell()[0], first).outbox == copies
    arrived = [
        InputRecord(NAMES.rekeyed, home, n, c.key, c.value, c.headers)
        for n, c in enumerate([*copies, *copies])
    ]
    result = process(shell, arrived)
    assert result.counts == {"scored": 3, "already_applied": 3}
    assert store.states["carol"].events == 3
