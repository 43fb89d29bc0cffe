"""What the worker changes in Faust itself, in one place, installed once at import of
streams.app: each change says which Faust behaviour it works around.

- Faust's compiled stream iterator acknowledges records without `Consumer.ack`, which the
  worker guards (EngageWorker._guard_acks): the pure-Python iterator is used instead.
- Faust declares its own topics (the leader topic, changelogs) as the worker starts; a broker
  not ready at that moment (fenced for a moment on a loaded machine, restarting) made the
  worker exit with NodeNotReadyError. Declarations are retried for up to a minute instead,
  logged at each retry.
- Faust's consumer takes records out of aiokafka (its position moves past them) and then may
  not hand them on: a fetch that returns while flow is stopped for a rebalance, or after the
  generation changed, is dropped, and Faust seeks back only partitions committed above 0. A
  changelog record dropped so after recovery had sought its partition was never read again:
  recovery waited for it for good (seen in tests/integration/test_web_routing.py under load).
  Every partition whose fetched records were not all handed on is sought back to the first
  one not handed on and not read already, unless something else moved it since the fetch:
  a seek by the new assignment after a rebalance stands (`seek_where_unmoved`; a rewind past
  it lost a partition's records in the rebalance-during-delivery scenario under load). What
  was read is judged by Faust's read offsets at the seek, not at the fetch: a revocation in
  between forgets them, and the records not handed on then count from the first.
- `flow_control.resume()` empties the agents' queues, records already taken from aiokafka,
  while the conductor fills them without waiting for flow control. Faust resumes the input
  partitions before that call: records fetched in between were dropped, and on a partition
  never committed no seek brought them back (the first records of a partition lost; CI saw
  it). The worker empties the queues itself, before it seeks its inputs, and the resume
  that follows keeps them (`keep_queues_at_next_resume`).
- Faust's consumer hands each record on through `wait_first(callback, suspend_flow.wait())`,
  which makes four tasks and several loop turns per record: a fifth of the worker's main
  thread at full rate (py-spy, benchmarks/bench_worker.py). The handing on almost never
  waits (the conductor puts into a queue with room); `wait_first_inline` runs it inline and
  falls back to Faust's own `wait_first`, with the same outcome, only when it does wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NamedTuple

from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError
from faust import streams as faust_streams
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport
from faust.types import TP
from mode.services import WaitResults
from mode.utils.locks import Event as ModeEvent
from mode.utils.queues import FlowControlEvent
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger("engage.worker")
TOPIC_DECLARE_PATIENCE_S = 60.0
_NOT_READY = (NodeNotReadyError, KafkaConnectionError, RequestTimedOutError)


def install() -> None:
    faust_streams._CStreamIterator = None  # type: ignore[attr-defined]
    _install_rewind()
    _install_inline_delivery()
    declare = Transport._create_topic
    if getattr(declare, "engage_patient", False):
        return

    async def patient(self: Any, *args: Any, **kwargs: Any) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_NOT_READY),
            stop=stop_after_delay(TOPIC_DECLARE_PATIENCE_S),
            wait=wait_exponential(multiplier=0.5, max=5),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                await declare(self, *args, **kwargs)

    patient.engage_patient = True  # type: ignore[attr-defined]
    Transport._create_topic = patient  # type: ignore[method-assign]


def _install_inline_delivery() -> None:
    if getattr(Consumer.wait_first, "engage_inline", False):
        return
    Consumer.wait_first = wait_first_inline(Consumer.wait_first)  # type: ignore[method-assign]


def wait_first_inline(wait_first: Callable[..., Any]) -> Callable[..., Any]:
    """Faust's `Service.wait_first` for its record loop's call, `wait_first(deliver(record),
    suspend_flow.wait())`: the first coroutine's first step runs inline; if that finishes it
    (the usual case), so does the call, with the second one finished too if it needs no
    wait. Only a delivery that must wait goes to `wait_first`, resumed where it stopped.
    Other calls (events, timeouts, a stopped service) go to `wait_first` as they are."""

    async def inline(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if (timeout is not None or len(coros) != 2
                or not (asyncio.iscoroutine(coros[0]) and asyncio.iscoroutine(coros[1]))
                or self._stopped.is_set() or self._crashed.is_set()):
            return await wait_first(self, *coros, timeout=timeout)
        first, second = coros
        try:
            waits_on = first.send(None)
        except StopIteration as done:
            winners, results = [first], [done.value]
            if _finish_now(second, results):
                winners.append(second)
            return WaitResults(winners, results, False)
        except BaseException:
            second.close()
            raise
        return await wait_first(self, _resumed(first, waits_on), second)

    inline.engage_inline = True  # type: ignore[attr-defined]
    return inline


# Event.wait coroutines whose outcome can be read off their event without running them
_EVENT_WAITS = {asyncio.Event.wait.__code__, ModeEvent.wait.__code__}


def _finish_now(coro: Any, results: list[Any]) -> bool:
    """Run `coro` if it finishes without waiting (its result appended); else close it. An
    event's `wait()` is not run: its event says (running it makes a future to close)."""
    if coro.cr_code in _EVENT_WAITS and coro.cr_frame is not None:
        event = coro.cr_frame.f_locals["self"]
        coro.close()
        if event.is_set():
            results.append(True)  # what Event.wait returns
            return True
        return False
    try:
        coro.send(None)
    except StopIteration as done:
        results.append(done.value)
        return True
    coro.close()
    return False


async def _resumed(coro: Any, waits_on: Any) -> Any:
    """Go on with a coroutine already stepped once, which now waits on `waits_on` (a future,
    or None for a bare yield), as the task running it would."""
    while True:
        try:
            if waits_on is None:
                await asyncio.sleep(0)
            else:
                waits_on._asyncio_future_blocking = False
                await asyncio.wait([waits_on])
        except asyncio.CancelledError:
            if waits_on is not None:
                waits_on.cancel()
            try:
                coro.throw(asyncio.CancelledError())
            except (StopIteration, asyncio.CancelledError):
                raise asyncio.CancelledError() from None
            coro.close()
            raise
        try:
            waits_on = coro.send(None)
        except StopIteration as done:
            return done.value


REWIND_TIMEOUT_S = 10.0
PositionMark = tuple[Any, int | None]


def _install_rewind() -> None:
    if getattr(Consumer.getmany, "engage_rewinds", False):
        return
    init, getmany = Consumer.__init__, Consumer.getmany
    fetch_records = AIOKafkaConsumerThread._fetch_records

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._engage_delivered = {}
        deliver = self.callback

        async def delivering(message: Any) -> None:
            await deliver(message)
            self._engage_delivered[message.tp] = message.offset

        self.callback = delivering

    async def marking_fetch(self: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
        """Faust's fetch, in the consumer's thread; and, before anything else can run there,
        where each partition that gave records stands."""
        records = await fetch_records(self, consumer, *args, **kwargs) or {}
        self.engage_fetched = records, {tp: position_mark(consumer, tp) for tp in records}
        return records

    async def rewinding_getmany(self: Any, timeout: float) -> AsyncIterator[Any]:
        """Faust's getmany; then, once the fetcher has handled what it yielded, the
        partitions whose fetched records were not all handed on go back to the first."""
        thread, self._engage_delivered = self._thread, {}
        thread.engage_fetched = {}, {}  # stays so when Faust does not fetch (nothing active)
        async for item in getmany(self, timeout):
            yield item
        fetched, marks = thread.engage_fetched
        wanted = not_handed_on(fetched, marks, self._engage_delivered)
        if wanted:
            await rewind_undelivered(self, wanted)

    rewinding_getmany.engage_rewinds = True  # type: ignore[attr-defined]
    Consumer.__init__ = __init__  # type: ignore[method-assign]
    Consumer.getmany = rewinding_getmany  # type: ignore[method-assign]
    AIOKafkaConsumerThread._fetch_records = marking_fetch  # type: ignore[method-assign]


def first_unread(offsets: list[int], read_offset: int | None) -> int | None:
    """The first of `offsets` (records not handed on) that Faust would not drop on purpose:
    one below its read offset was read already."""
    return next((o for o in offsets if read_offset is None or o >= read_offset), None)


class NotHandedOn(NamedTuple):
    """A partition's fetched records past the last one handed on, and where the fetch left
    the partition."""

    offsets: list[int]
    mark: PositionMark | None


def not_handed_on(
    fetched: Mapping[TP, list[Any]],
    marks: Mapping[TP, PositionMark | None],
    delivered: Mapping[TP, int],
) -> dict[TP, NotHandedOn]:
    """The partitions whose fetched records (in offset order) were not all handed on; the
    usual case, all handed on, costs one comparison per partition."""
    wanted = {}
    for tp, records in fetched.items():
        last = delivered.get(tp)
        if not records or (last is not None and records[-1].offset <= last):
            continue
        offsets = [r.offset for r in records if last is None or r.offset > last]
        wanted[tp] = NotHandedOn(offsets, marks.get(tp))
    return wanted


def position_mark(consumer: Any, tp: TP) -> PositionMark | None:
    """Where a partition stands in aiokafka (`consumer`): its state object, which a new
    assignment replaces, and its position, which a seek or a fetch moves. None when not
    assigned."""
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription else None
    state = assignment.state_value(tp) if assignment else None
    return None if state is None else (state, state._position)


async def seek_where_unmoved(
    consumer: Any, wanted: Mapping[TP, NotHandedOn], read_offset: Mapping[TP, int | None]
) -> dict[TP, int]:
    """In the consumer's thread, with no wait between a check and its seek: each partition
    still where its fetch left it (same assignment, same position) goes back to its first
    record not handed on. A record below Faust's read offset as it is now was read already
    (Faust drops it on purpose); a revocation since the fetch forgot that offset, and the
    records count again. The read offset is left as it is: Faust's filter lets the records
    from the first one through, and a value set here after a revocation would outlive it
    (the worker takes a partition without one for never committed). A partition that moved
    since was sought by someone else (the new assignment to its committed offset or first
    record, recovery to its changelog offset): that seek stands, and a rewind past it would
    skip what lies between."""
    sought = {}
    for tp, (offsets, mark) in wanted.items():
        first = first_unread(offsets, read_offset.get(tp))
        now = position_mark(consumer, tp)
        if first is None or mark is None or now != mark:  # states compare by identity
            continue
        consumer.seek(tp, first)
        sought[tp] = first
    return sought


async def rewind_undelivered(consumer: Any, wanted: Mapping[TP, NotHandedOn]) -> None:
    """Seek each partition in `wanted` back to its first record not handed on, unless it
    moved since its fetch (`seek_where_unmoved`, run in Faust's consumer thread)."""
    thread = consumer._thread
    try:
        sought = await asyncio.wait_for(
            thread.call_thread(seek_where_unmoved, thread._ensure_consumer(), wanted,
                               consumer._read_offset),
            REWIND_TIMEOUT_S)
    except Exception as exc:  # consumer stopping, thread busy: the next seek decides
        log.warning("could not seek %s back to the records not handed on: %r",
                    sorted(f"{tp.topic}[{tp.partition}]" for tp in wanted), exc)
        return
    for tp, first in sought.items():
        log.info("%s[%d]: records from offset %d were fetched and not handed on; "
                 "reading them again", tp.topic, tp.partition, first)


def keep_queues_at_next_resume(
    flow_control: FlowControlEvent, still_current: Callable[[], bool]
) -> None:
    """Empty the queues now; the next `clear()` (the one `resume()` makes) leaves them as they
    are if `still_current()` (the same group generation): records queued from here on stay."""
    empty = getattr(flow_control, "engage_empty", None)
    if empty is None:
        empty = flow_control.clear

        def clear() -> None:
            keep = flow_control.engage_keep_once  # type: ignore[attr-defined]
            flow_control.engage_keep_once = None  # type: ignore[attr-defined]
            if keep is None or not keep():
                empty()

        flow_control.engage_empty = empty  # type: ignore[attr-defined]
        flow_control.clear = clear  # type: ignore[method-assign]
    empty()
    flow_control.engage_keep_once = still_current  # type: ignore[attr-defined]
