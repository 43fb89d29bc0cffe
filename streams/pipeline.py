"""Batches between scoring and storing, kept in order: the score loop scores the next batch
while the broker acknowledges the last one's outputs and state.

Why: a batch's outputs, then its changelog records, each wait for the broker's
acknowledgement, and the loop used to wait with them: with a fresh backlog on the 2-core
bench (benchmarks/bench_worker.py) the worker was idle for 5-14 % of its time. The score
loop lets the event loop run every 1,000 records of a batch (streams/app.py), and the
deliveries in flight move on there.

What stays as it was, batch by batch (docs/guarantees.md):
- a batch's state is written only once every one of its outputs is acknowledged;
- batch N+1's outputs are sent only once N's are acknowledged, so a partition's records keep
  their order even when N's are retried record by record;
- N+1's state is written only once N's is stored, and never when N's was dropped (a
  rebalance came during it): N+1 was scored on N's states;
- at most `depth` batches are in flight; the loop waits for the oldest beyond that.

The worker supplies what one batch's delivery does (`Deliver`) and keeps that order with
the delivery before it (`previous`: its `outputs_done`, `stored()`, `failed()`); this module
links each delivery to the one before and bounds how many are in flight.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any


class Delivery:
    """One batch on its way: `outputs_done` is set once its outputs are acknowledged (or it
    gave up before sending them); `task` ends True once its state is stored, False when the
    batch was dropped."""

    __slots__ = ("generation", "outputs_done", "task")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.outputs_done = asyncio.Event()
        self.task: asyncio.Task[bool] | None = None

    async def stored(self) -> bool:
        """Waits for the delivery's end: True when its state was stored."""
        assert self.task is not None
        await asyncio.wait([self.task])
        return self._succeeded()

    def failed(self) -> bool:
        """Ended without storing its state."""
        return self.task is not None and self.task.done() and not self._succeeded()

    def _succeeded(self) -> bool:
        task = self.task
        assert task is not None
        return not task.cancelled() and task.exception() is None and task.result()


Deliver = Callable[[Delivery, Delivery | None], Coroutine[Any, Any, bool]]


class DeliveryPipeline:
    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.depth = depth
        self._inflight: deque[Delivery] = deque()
        # set while no batch is scored or in flight: a revocation waits for it
        self.quiet = asyncio.Event()
        self.quiet.set()
        self._scoring = False

    def __len__(self) -> int:
        return len(self._inflight)

    def generations(self) -> set[int]:
        """The group generations of the batches in flight."""
        return {d.generation for d in self._inflight}

    async def room(self) -> None:
        """Waits while `depth` batches are in flight (the oldest finishes first)."""
        while len(self._inflight) >= self.depth:
            await self._inflight[0].stored()

    def scoring(self) -> None:
        """A batch is being scored (its delivery is submitted next): not quiet."""
        self._scoring = True
        self.quiet.clear()

    def scored_nothing(self) -> None:
        """The batch being scored was abandoned: nothing to submit."""
        self._scoring = False
        if not self._inflight:
            self.quiet.set()

    def submit(self, generation: int, deliver: Deliver) -> Delivery:
        """Start a batch's delivery behind those in flight: `deliver(this, previous)`."""
        previous = self._inflight[-1] if self._inflight else None
        delivery = Delivery(generation)
        delivery.task = asyncio.create_task(deliver(delivery, previous))
        self._inflight.append(delivery)
        self._scoring = False
        self.quiet.clear()
        delivery.task.add_done_callback(lambda _task: self._finished(delivery))
        return delivery

    async def drain(self) -> None:
        """Waits until no batch is in flight."""
        while self._inflight:
            await self._inflight[-1].stored()

    def _finished(self, delivery: Delivery) -> None:
        delivery.outputs_done.set()  # even when it ended early: a successor never hangs
        self._inflight.remove(delivery)
        if not self._inflight and not self._scoring:
            self.quiet.set()
