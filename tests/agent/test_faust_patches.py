"""What the worker changes in Faust's consumer: records taken from aiokafka and not handed
on are read again, and the resume after a recovery keeps records queued after the worker's
own seek (streams/faust_patches.py; the broker-level proof is the web-routing and
rebalance tests under load)."""

from __future__ import annotations

import asyncio
import gc
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.consumer.fetcher import OffsetResetStrategy
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.types import TP
from mode import Service
from mode.utils.locks import Event as ModeEvent
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.faust_patches import (
    NotHandedOn,
    first_unread,
    keep_queues_at_next_resume,
    not_handed_on,
    position_mark,
    rewind_undelivered,
    wait_first_inline,
)


def test_the_records_not_handed_on_and_the_first_one_unread_are_found() -> None:
    tp = TP("in", 0)
    fetched = {tp: [Record(o) for o in (5, 6, 7, 8)]}
    assert not_handed_on(fetched, {}, {}) == {tp: NotHandedOn([5, 6, 7, 8], None)}
    assert not_handed_on(fetched, {}, {tp: 6}) == {tp: NotHandedOn([7, 8], None)}
    assert not_handed_on(fetched, {}, {tp: 8}) == {}
    assert first_unread([5, 6, 7, 8], None) == 5
    # below the read offset Faust drops a record on purpose (read already): not a loss
    assert first_unread([5, 6, 7, 8], 7) == 7
    assert first_unread([3, 4], 9) is None


@dataclass
class Record:
    offset: int


class KafkaConsumer:
    """aiokafka's consumer as the rewind sees it: its real subscription state (assignments,
    positions) and its seek."""

    def __init__(self, *tps: TP) -> None:
        self._subscription = SubscriptionState()
        self.assign(*tps)

    def assign(self, *tps: TP) -> None:
        """A new assignment, as a rebalance makes: new partition states."""
        self._subscription.assign_from_user(set(tps))

    def seek(self, tp: TP, offset: int) -> None:
        self._subscription.seek(tp, offset)

    def fetched_to(self, tp: TP, position: int) -> None:
        self._subscription.subscription.assignment.state_value(tp).consumed_to(position)

    def position(self, tp: TP) -> int | None:
        state = self._subscription.subscription.assignment.state_value(tp)
        return None if state is None else state._position


@dataclass
class ConsumerThread:
    """Faust's consumer thread: runs a call on aiokafka's consumer."""

    consumer: KafkaConsumer

    def _ensure_consumer(self) -> KafkaConsumer:
        return self.consumer

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)


@dataclass
class FaustConsumer:
    _thread: ConsumerThread
    _read_offset: dict[TP, int | None] = field(default_factory=dict)


def fetch(kafka: KafkaConsumer, records: dict[TP, list[Record]]) -> dict[TP, Any]:
    """A fetch: each partition's position after its records, and the marks taken then."""
    for tp, got in records.items():
        kafka.fetched_to(tp, got[-1].offset + 1)
    return {tp: position_mark(kafka, tp) for tp in records}


def test_partitions_past_records_not_handed_on_go_back_to_the_first() -> None:
    dropped, handed_on, recovered, read_already, revoked = (
        TP("in", 0), TP("in", 1), TP("cl", 1), TP("in", 2), TP("in", 3))
    everyone = (dropped, handed_on, recovered, read_already, revoked)

    async def scenario() -> tuple[KafkaConsumer, FaustConsumer]:
        kafka = KafkaConsumer(*everyone)
        faust = FaustConsumer(ConsumerThread(kafka),
                              {dropped: 11, handed_on: 9, read_already: 9, revoked: 3446})
        faust._read_offset.pop(revoked)  # a revocation forgets what was read (Faust)...
        kafka.assign(*everyone)  # ...and the new assignment of the same partitions...
        kafka.seek(revoked, 0)  # ...finds it never committed: from its first record
        kafka.seek(dropped, 0)
        kafka.seek(handed_on, 5)
        kafka.seek(recovered, 0)  # recovery seeks the changelog partition; then the fetch
        kafka.seek(read_already, 3)
        fetched = {
            dropped: [Record(o) for o in range(0, 28)],  # 0..11 handed on, 12.. dropped
            handed_on: [Record(o) for o in range(5, 10)],
            recovered: [Record(0)],  # dropped: the generation changed while it was fetched
            read_already: [Record(3), Record(4)],  # below the read offset: dropped, as meant
            revoked: [Record(o) for o in range(0, 3448)],  # a fetch across the rebalance
        }
        marks = fetch(kafka, fetched)
        wanted = not_handed_on(fetched, marks, {dropped: 11, handed_on: 9})
        assert set(wanted) == {dropped, recovered, read_already, revoked}
        await rewind_undelivered(faust, wanted)
        return kafka, faust

    kafka, faust = asyncio.run(scenario())
    assert [kafka.position(tp) for tp in everyone] == [12, 10, 0, 5, 0]
    # Faust's read offsets are left alone: its filter lets the records from the first through
    assert faust._read_offset == {dropped: 11, handed_on: 9, read_already: 9}


def test_a_partition_moved_since_its_fetch_stays_where_it_was_moved() -> None:
    """A seek after the fetch (the new assignment's, to a never-committed partition's first
    record) or a new assignment stands: a rewind to the first fetched record not handed on
    would skip everything before it (seen: a partition's records lost, committed to its
    end)."""
    sought, reassigned, unassigned = TP("in", 0), TP("in", 1), TP("in", 2)

    async def scenario() -> KafkaConsumer:
        kafka = KafkaConsumer(sought, reassigned, unassigned)
        for tp in (sought, reassigned, unassigned):
            kafka.seek(tp, 3447)
        fetched = {tp: [Record(3447)] for tp in (sought, reassigned, unassigned)}
        marks = fetch(kafka, fetched)
        kafka.assign(sought, reassigned)  # a rebalance; `unassigned` went to another worker
        kafka.seek(sought, 0)
        kafka.seek(reassigned, 3448)  # its committed offset: the same position, anew
        wanted = not_handed_on(fetched, marks, {})
        assert set(wanted) == {sought, reassigned, unassigned}
        await rewind_undelivered(FaustConsumer(ConsumerThread(kafka)), wanted)
        return kafka

    kafka = asyncio.run(scenario())
    assert [kafka.position(tp) for tp in (sought, reassigned)] == [0, 3448]


def test_a_partition_sought_since_its_fetch_in_the_same_assignment_stays_there() -> None:
    """Recovery seeks a changelog partition with no rebalance between, or a reset moves it:
    that position stands too."""
    sought, reset = TP("cl", 0), TP("in", 0)

    async def scenario() -> KafkaConsumer:
        kafka = KafkaConsumer(sought, reset)
        kafka.seek(sought, 40)
        kafka.seek(reset, 40)
        fetched = {tp: [Record(o) for o in range(40, 50)] for tp in (sought, reset)}
        marks = fetch(kafka, fetched)
        kafka.seek(sought, 0)
        kafka._subscription.subscription.assignment.state_value(reset).await_reset(
            OffsetResetStrategy.EARLIEST)
        await rewind_undelivered(FaustConsumer(ConsumerThread(kafka)),
                                 not_handed_on(fetched, marks, {}))
        return kafka

    kafka = asyncio.run(scenario())
    assert [kafka.position(sought), kafka.position(reset)] == [0, None]


def test_the_resume_after_the_workers_seek_keeps_what_was_queued_since() -> None:
    async def scenario() -> list[list[str]]:
        flow = FlowControlEvent(initially_suspended=False)
        queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                        clear_on_resume=True)
        generation = [2]
        seen = []
        queue.force_put_nowait("read before the seek")
        keep_queues_at_next_resume(flow, lambda: generation[0] == 2)
        seen.append(list(queue._queue))  # type: ignore[attr-defined]
        queue.force_put_nowait("read after the seek")
        flow.resume()  # Faust's resume right after the recovery: kept
        seen.append(list(queue._queue))  # type: ignore[attr-defined]
        flow.resume()  # any later resume empties the queues as Faust does
        seen.append(list(queue._queue))  # type: ignore[attr-defined]
        queue.force_put_nowait("read in generation 2")
        keep_queues_at_next_resume(flow, lambda: generation[0] == 2)
        queue.force_put_nowait("read before a newer rebalance")
        generation[0] = 3  # a rebalance came before Faust's resume: that resume empties
        flow.resume()
        seen.append(list(queue._queue))  # type: ignore[attr-defined]
        return seen

    assert asyncio.run(scenario()) == [[], ["read after the seek"], [], []]


# -- handing records on inline (wait_first_inline) ---------------------------------------


class Consumer(Service):
    """A mode Service whose wait_first is the worker's inline one."""

    wait_first = wait_first_inline(Service.wait_first)


def test_a_delivery_that_needs_no_wait_runs_inline_and_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        consumer, delivered, suspend = Consumer(), [], asyncio.Event()

        async def deliver(n: int) -> int:
            delivered.append(n)
            return n

        tasks_before = len(asyncio.all_tasks())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a coroutine never awaited would warn
            results = [await consumer.wait_first(deliver(n), suspend.wait()) for n in range(3)]
            gc.collect()
        assert delivered == [0, 1, 2]
        assert [r.results for r in results] == [[0], [1], [2]]
        assert not any(r.stopped for r in results)
        assert len(asyncio.all_tasks()) == tasks_before
        assert not suspend._waiters  # type: ignore[attr-defined]  # its wait was closed

    asyncio.run(scenario())


def test_a_suspension_already_set_wins_too_as_in_faust() -> None:
    async def scenario() -> None:
        consumer = Consumer()

        async def deliver() -> str:
            return "delivered"

        for suspend in (asyncio.Event(), ModeEvent()):
            suspend.set()
            waiting = suspend.wait()
            result = await consumer.wait_first(deliver(), waiting)
            assert result.done[1] is waiting and result.results == ["delivered", True]
            unset = type(suspend)()
            result = await consumer.wait_first(deliver(), unset.wait())
            assert result.results == ["delivered"]
            assert not unset._waiters  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_a_delivery_that_must_wait_finishes_as_faust_would_finish_it() -> None:
    async def scenario() -> None:
        consumer, suspend = Consumer(), asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(0)

        async def deliver(n: int) -> str:
            await queue.put(n)  # full: waits until the agent takes one
            return f"put {n}"

        async def agent() -> None:
            await asyncio.sleep(0.01)
            assert queue.get_nowait() == 0

        taking = asyncio.ensure_future(agent())
        result = await consumer.wait_first(deliver(1), suspend.wait())
        await taking
        assert result.results == ["put 1"] and not result.stopped
        assert queue.get_nowait() == 1

    asyncio.run(scenario())


def test_a_waiting_delivery_is_cancelled_when_flow_is_suspended() -> None:
    async def scenario() -> None:
        consumer, suspend, never = Consumer(), asyncio.Event(), asyncio.Event()
        cleaned: list[str] = []

        async def deliver() -> None:
            try:
                await never.wait()
            finally:
                cleaned.append("delivery stopped")

        async def rebalance() -> None:
            await asyncio.sleep(0.01)
            suspend.set()

        suspending = asyncio.ensure_future(rebalance())
        result = await consumer.wait_first(deliver(), suspend.wait())
        await suspending
        await asyncio.sleep(0)  # the cancelled delivery's cleanup runs
        assert result.results == [True]  # only the suspension won
        assert cleaned == ["delivery stopped"]

    asyncio.run(scenario())


def test_a_failing_delivery_raises_as_faust_raises_it() -> None:
    async def scenario() -> None:
        consumer, suspend = Consumer(), asyncio.Event()

        async def deliver() -> None:
            raise ValueError("bad record")

        with pytest.raises(ValueError, match="bad record"):
            await consumer.wait_first(deliver(), suspend.wait())

    asyncio.run(scenario())
