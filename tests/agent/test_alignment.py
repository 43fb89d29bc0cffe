"""The scoring agent's alignment without a broker: a partition whose next day's population
reference waits for a partition that lags keeps its records (unapplied, unmarked, for the
runtime to keep unacknowledged), applies them in order once the laggard closed the day, and
gives up waiting after the configured time."""

from __future__ import annotations

import json

from scoring.config import load_config
from scoring.partition_state import (
    PartitionState,
    decode_partition_state,
    encode_partition_state,
)
from scoring.partitioning import partition_for_user
from scoring.state import UserState
from scoring.state_codec import decode_state, encode_state
from sinks.metrics import Metrics
from streams.engine_factory import build_engine
from streams.processor import BatchResult, DictStore, InputRecord, ScoringShell
from streams.topics import TopicNames
from tests.helpers import DAY, HOUR, T0, wire

NAMES = TopicNames()
PARTITIONS = 2


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def users_on(partition: int, n: int) -> list[str]:
    return [u for u in (f"user-{i}" for i in range(100))
            if partition_for_user(u, PARTITIONS) == partition][:n]


class EncodedStore(DictStore):
    """States kept as the table keeps them (copies, through their encoding): a batch that
    is not stored leaves no trace in them."""

    def load(self, user_id: str) -> UserState | None:
        state = self.states.get(user_id)
        return decode_state(encode_state(state)) if state is not None else None

    def save(self, user_id: str, partition: int, state: UserState) -> None:
        self.states[user_id] = decode_state(encode_state(state))

    def load_partition(self, partition: int) -> PartitionState | None:
        state = self.partition_states.get(partition)
        return (decode_partition_state(encode_partition_state(state))
                if state is not None else None)

    def save_partition(self, partition: int, state: PartitionState) -> None:
        self.partition_states[partition] = decode_partition_state(encode_partition_state(state))


class Worker:
    def __init__(self, max_wait_ms: int = 60_000) -> None:
        config = load_config()
        self.clock = Clock(T0 + 30 * DAY)
        self.metrics = Metrics()
        self.store = EncodedStore(PARTITIONS)
        engine = build_engine(config, churn=None)
        self.shell = ScoringShell(config, engine, self.store, NAMES, PARTITIONS, self.metrics,
                                  wall_clock_ms=self.clock, max_reference_wait_ms=max_wait_ms)
        self.offsets = {0: -1, 1: -1}

    def rec(self, user: str, ts: int, topic: str = NAMES.interactions) -> InputRecord:
        partition = partition_for_user(user, PARTITIONS)
        self.offsets[partition] += 1
        value = wire(user, "view", ts) if topic == NAMES.interactions else b'{"tick": 1}'
        return InputRecord(topic, partition, self.offsets[partition], user.encode(), value)

    def batch(self, records: list[InputRecord]) -> BatchResult:
        result = self.shell.handle_batch(records)
        self.shell.store_batch(result)
        return result

    def counted(self, user: str) -> int:
        state = self.store.load(user)
        return state.events if state is not None else 0


def test_a_partition_ahead_waits_for_the_laggard_then_applies_in_order() -> None:
    w = Worker()
    (p_user,), (q_user,) = users_on(0, 1), users_on(1, 1)
    day0 = [w.rec(p_user, T0 + HOUR), w.rec(q_user, T0 + HOUR)]
    assert w.batch(day0).held == []
    # p runs into day 1 (its watermark passes midnight at 01:00) while q is still in day 0
    ahead = [w.rec(p_user, T0 + DAY + 2 * HOUR), w.rec(p_user, T0 + DAY + 3 * HOUR)]
    result = w.batch(ahead)
    assert result.held == ahead  # kept, for the runtime to leave unacknowledged
    assert w.counted(p_user) == 1
    assert w.shell.driver.processed_offset(0, "input") == 0  # not marked processed
    scores = [json.loads(r.value) for r in result.outbox if r.topic == NAMES.scores]
    assert [s["user_id"] for s in scores] == []
    # q closes day 0: p's records go through, in order, against the reference of day 1
    result = w.batch([w.rec(q_user, T0 + DAY + 30 * 60_000)])
    assert result.held == [] and result.released == ahead  # to acknowledge now
    assert w.counted(p_user) == 3
    assert w.shell.driver.processed_offset(0, "input") == 2
    day0 = T0 // DAY
    assert w.shell.driver.clock(0).shared.stored.reference_position.ref_parts == {0: day0, 1: day0}


def test_held_and_applied_within_one_batch_is_acknowledged_with_the_batch() -> None:
    w = Worker()
    (p_user,), (q_user,) = users_on(0, 1), users_on(1, 1)
    w.batch([w.rec(p_user, T0 + HOUR), w.rec(q_user, T0 + HOUR)])
    ahead = w.rec(p_user, T0 + DAY + 2 * HOUR)
    result = w.batch([ahead, w.rec(q_user, T0 + DAY + 30 * 60_000)])  # q closes day 0
    assert (result.held, result.released) == ([], [])  # an ordinary record of this batch
    assert w.counted(p_user) == 2
    assert w.shell.driver.processed_offset(0, "input") == 1


def test_only_records_newly_held_are_reported_each_batch() -> None:
    w = Worker()
    (p_user,), (q_user,) = users_on(0, 1), users_on(1, 1)
    w.batch([w.rec(p_user, T0 + HOUR), w.rec(q_user, T0 + HOUR)])
    first = [w.rec(p_user, T0 + DAY + 2 * HOUR)]
    assert w.batch(first).held == first
    second = [w.rec(p_user, T0 + DAY + 3 * HOUR), w.rec(p_user, T0 + DAY + 4 * HOUR)]
    result = w.batch(second)
    assert (result.held, result.released) == (second, [])  # `first` was reported already
    result = w.batch([w.rec(q_user, T0 + DAY + 30 * 60_000)])
    assert (result.held, result.released) == ([], first + second)
    assert w.counted(p_user) == 4


def test_records_and_ticks_behind_a_held_record_wait_with_it() -> None:
    w = Worker()
    (p_user, p_other), (q_user,) = users_on(0, 2), users_on(1, 1)
    w.batch([w.rec(p_user, T0 + HOUR), w.rec(q_user, T0 + HOUR)])
    first = w.rec(p_user, T0 + DAY + 2 * HOUR)
    behind = w.rec(p_other, T0 + DAY + 90 * 60_000)  # older, within the lateness: it waits
    tick = w.rec(p_user, 0, topic=NAMES.ticks)
    result = w.batch([first, behind, tick])
    assert result.held == [first, behind]  # the tick is dropped: ticks come again
    assert w.counted(p_other) == 0
    w.batch([w.rec(q_user, T0 + DAY)])
    assert (w.counted(p_user), w.counted(p_other)) == (2, 1)


def test_a_wait_longer_than_allowed_is_cut_short_and_counted() -> None:
    w = Worker(max_wait_ms=30_000)
    (p_user,), (q_user,) = users_on(0, 1), users_on(1, 1)
    w.batch([w.rec(p_user, T0 + HOUR), w.rec(q_user, T0 + HOUR)])
    held = w.rec(p_user, T0 + DAY + 2 * HOUR)
    assert w.batch([held]).held == [held]
    w.clock.now += 29_000
    assert w.batch([w.rec(q_user, T0 + 2 * HOUR)]).released == []  # q still in day 0
    w.clock.now += 2_000
    result = w.batch([])
    assert result.released == [held]
    assert w.counted(p_user) == 2
    exchange = w.shell.driver.exchange
    assert exchange.forced == 1 and exchange.stalled == {1}
    # the next day does not wait for the stalled partition
    assert w.batch([w.rec(p_user, T0 + 2 * DAY + 2 * HOUR)]).held == []
    metrics = w.metrics.registry.get_sample_value("engage_reference_waits_total")
    assert metrics == 1.0


def test_a_batch_not_stored_drops_what_was_held_and_everything_comes_again_in_order() -> None:
    """A rebalance during a batch: nothing of it is stored. The worker forgets every
    partition (what they held too) and scores nothing of the batch again: the rebalance
    seeks each partition back to its committed offset, so all records come again, in order,
    and none of the batch's later ones can go ahead of the held ones."""
    w = Worker()
    (p_user,), (q_user,) = users_on(0, 1), users_on(1, 1)
    w.batch([w.rec(p_user, T0 + HOUR), w.rec(q_user, T0 + HOUR)])  # committed: offset 0
    ahead = [w.rec(p_user, T0 + DAY + 2 * HOUR), w.rec(p_user, T0 + DAY + 3 * HOUR)]
    assert w.batch(ahead).held == ahead
    later, closing = w.rec(p_user, T0 + DAY + 4 * HOUR), w.rec(q_user, T0 + DAY + 30 * 60_000)
    unstored = w.shell.handle_batch([later, closing])  # releases `ahead`: not stored
    assert unstored.released == ahead
    w.shell.forget_partitions(set(w.shell.assigned))
    assert (w.counted(p_user), w.counted(q_user)) == (1, 1)
    # the rebalance sought both partitions back to their committed offsets
    w.batch([InputRecord(r.topic, r.partition, r.offset, r.key, r.value)
             for r in [*ahead, later, closing]])
    assert (w.counted(p_user), w.counted(q_user)) == (4, 2)
    assert w.shell.driver.processed_offset(0, "input") == later.offset
