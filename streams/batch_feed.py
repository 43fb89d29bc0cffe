"""The scoring inputs handed from Faust's consumer to the score loop in batches, not through
a Faust stream.

Why: a Faust agent receives records one at a time: an event object per record, a queue put
and get, the stream's processors and sensors and an event-loop turn each. Through the real
broker that costs more per record than everything else a bare Faust agent does
(benchmarks/bench_worker.py); the score loop takes whole batches and acknowledges them
itself, so it needs none of it. The conductor's handler for the input partitions appends
each record to a list, and the loop takes the list.

What stays Faust's, with the same behaviour as for an agent's queue:
- fetching, and commits from acknowledged offsets (`Consumer.ack`, which the worker guards);
- flow control: no record is taken in while flow is suspended for a rebalance, and the feed
  is emptied with the agents' queues (`FlowControlEvent.clear`), so records read before a
  generation's seek never go ahead of the records the seek brings back;
- back-pressure: a partition leaves the fetch while the feed holds `limit` records and comes
  back when the feed has drained below 40 % of that (Faust's queue ratios);
- the monitor's per-message counts (`track_message`, `on_message_out`);
- the wait for Faust's producer buffer to ebb (asked every `EBB_EVERY` records).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import TP

DRAINED_RATIO = 0.4  # as Faust's queues: fetching resumes below 40 % of the limit
# Faust's handler waits for its producer buffer to ebb before each record; its size reads
# the app's settings each time: the feed asks once every this many records instead
EBB_EVERY = 64

Handler = Callable[[Any], Awaitable[None]]


class BatchFeed:
    def __init__(
        self, app: faust.App, channel: faust.TopicT, max_records: int, within_s: float
    ) -> None:
        self.app = app
        self.channel = channel
        self.topics = frozenset(channel.topics)
        self.max_records = max_records
        self.within_s = within_s
        self.limit = max(int(app.conf.stream_buffer_maxsize), max_records)
        self._pending: list[Any] = []
        self._filled = asyncio.Event()  # a whole batch is waiting
        self._paused: set[TP] = set()  # partitions this feed took out of the fetch
        self._until_ebb = 0  # records to take in before asking the producer buffer again
        app.flow_control.manage_queue(self)  # type: ignore[arg-type]  # cleared with queues
        self._install()

    def _install(self) -> None:
        """The conductor builds one handler per assigned partition: the feed's for its
        topics, Faust's (to the agents' queues) for the others."""
        conductor: Any = self.app.topics
        build = conductor._build_handler

        def build_handler(tp: TP, channels: Any) -> Handler:
            return self._on_message if tp.topic in self.topics else build(tp, channels)

        conductor._build_handler = build_handler
        conductor.add(self.channel)  # subscribed as an agent's channel would be

    async def _on_message(self, message: Any) -> None:
        flow = self.app.flow_control
        if not flow.is_active():
            await flow.acquire()
        if self._until_ebb:
            self._until_ebb -= 1
        else:
            self._until_ebb = EBB_EVERY - 1
            await self.app.producer.buffer.wait_until_ebb()
        pending = self._pending
        pending.append(message)
        if len(pending) >= self.max_records:
            self._filled.set()
            if len(pending) >= self.limit:
                tp = TP(message.topic, message.partition)  # Faust's type, as its queues pass
                self.app.consumer.on_buffer_full(tp)
                self._paused.add(tp)

    async def next_batch(self) -> list[Any]:
        """Up to `max_records` records, as soon as that many are in, or else what came
        within `within_s` (Faust's `take`: a window that starts when the loop asks). Each
        is tracked by the consumer from here until acknowledged."""
        while True:
            if len(self._pending) < self.max_records:
                self._filled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._filled.wait(), self.within_s)
            if self._pending:
                break
        batch = self._pending[: self.max_records]
        del self._pending[: self.max_records]
        self._resume_if_drained()
        track = self.app.consumer.track_message
        for message in batch:
            track(message)
        return batch

    def acknowledge(self, messages: Sequence[Any]) -> None:
        """The records' effects are stored: their offsets may be committed."""
        ack = self.app.consumer.ack
        done = self.app.sensors.on_message_out
        for message in messages:
            if ack(message):
                done(message.tp, message.offset, message)

    def leave_uncommitted(self, message: Any) -> None:
        """A record left for a later generation or another owner: marked acknowledged
        without counting towards commits (Faust commits up to acknowledged offsets, and
        `ack` of an acknowledged record is a no-op), so no commit passes it."""
        message.acked = True
        self.app.consumer._unacked_messages.discard(message)  # type: ignore[attr-defined]
        self.app.sensors.on_message_out(message.tp, message.offset, message)

    def clear(self) -> None:
        """Flow control empties the agents' queues (a rebalance; a generation's seek):
        what the feed holds was read before it and comes again."""
        self._pending.clear()
        self._resume_if_drained()

    def _resume_if_drained(self) -> None:
        if self._paused and len(self._pending) < self.limit * DRAINED_RATIO:
            for tp in self._paused:
                self.app.consumer.on_buffer_drop(tp)
            self._paused.clear()
