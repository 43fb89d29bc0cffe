"""The worker's pipeline of batches between scoring and storing (streams/pipeline.py), and the
table store's staged records that let the next batch read a batch not yet stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from scoring.config import load_config
from scoring.state import UserState
from scoring.state_codec import codec_for
from streams.app import TableStore
from streams.pipeline import Delivery, DeliveryPipeline
from streams.processor import OutRecord


class Gates:
    """Each batch's delivery waits for its gates; the log says what happened, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.outputs: dict[int, asyncio.Event] = {}
        self.changelog: dict[int, asyncio.Event] = {}
        self.fail: set[int] = set()

    def deliver(self, n: int) -> Any:
        self.outputs[n], self.changelog[n] = asyncio.Event(), asyncio.Event()

        async def run(this: Delivery, previous: Delivery | None) -> bool:
            if previous is not None:
                await previous.outputs_done.wait()
            self.log.append(f"outputs {n}")
            await self.outputs[n].wait()
            this.outputs_done.set()
            if previous is not None and not await previous.stored():
                self.log.append(f"dropped {n}")
                return False
            if n in self.fail:
                self.log.append(f"dropped {n}")
                return False
            await self.changelog[n].wait()
            self.log.append(f"stored {n}")
            return True

        return run


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_batches_are_stored_in_order_and_the_loop_waits_beyond_the_depth() -> None:
    async def scenario() -> None:
        pipeline, gates = DeliveryPipeline(depth=2), Gates()
        assert pipeline.quiet.is_set()
        pipeline.scoring()
        assert not pipeline.quiet.is_set()
        first = pipeline.submit(1, gates.deliver(1))
        pipeline.scoring()
        pipeline.submit(1, gates.deliver(2))
        await _turns()
        assert gates.log == ["outputs 1"]  # the second's outputs wait for the first's
        gates.outputs[2].set()  # acknowledged early: still after the first's
        gates.outputs[1].set()
        gates.changelog[2].set()  # the second's state waits for the first's
        await _turns()
        assert gates.log == ["outputs 1", "outputs 2"]
        room = asyncio.ensure_future(pipeline.room())
        await _turns()
        assert not room.done()  # two in flight: the loop waits for the oldest
        gates.changelog[1].set()
        await _turns()
        assert gates.log == ["outputs 1", "outputs 2", "stored 1", "stored 2"]
        assert room.done() and await first.stored()
        assert len(pipeline) == 0 and pipeline.quiet.is_set()

    asyncio.run(scenario())


def test_a_dropped_batch_drops_every_batch_scored_after_it() -> None:
    async def scenario() -> None:
        pipeline, gates = DeliveryPipeline(depth=3), Gates()
        gates.fail.add(1)
        deliveries = [pipeline.submit(1, gates.deliver(n)) for n in (1, 2, 3)]
        for n in (1, 2, 3):
            gates.outputs[n].set()
            gates.changelog[n].set()
        await pipeline.drain()
        assert [await d.stored() for d in deliveries] == [False, False, False]
        assert all(d.failed() for d in deliveries)
        assert [e for e in gates.log if not e.startswith("outputs")] == [
            "dropped 1", "dropped 2", "dropped 3"]  # nothing stored, in order
        assert pipeline.quiet.is_set()

    asyncio.run(scenario())


def test_quiet_waits_for_the_batch_being_scored_and_for_those_in_flight() -> None:
    async def scenario() -> None:
        pipeline, gates = DeliveryPipeline(depth=2), Gates()
        pipeline.submit(1, gates.deliver(1))
        pipeline.scoring()  # the next batch is scored while the first is delivered
        gates.outputs[1].set()
        gates.changelog[1].set()
        await _turns()
        assert len(pipeline) == 0
        assert not pipeline.quiet.is_set()  # a revocation must still wait
        pipeline.scored_nothing()  # abandoned: nothing in flight, nothing scored
        assert pipeline.quiet.is_set()
        assert pipeline.generations() == set()

    asyncio.run(scenario())


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        DeliveryPipeline(depth=0)


class FakeTable:
    """What TableStore uses of a Faust table (not its in-memory store: the lookup path)."""

    class Changelog:
        @staticmethod
        def get_topic_name() -> str:
            return "engage-users-changelog"

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = self.Changelog()

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def test_the_next_batch_reads_states_staged_but_not_yet_stored() -> None:
    codec = codec_for(load_config())
    table = FakeTable()
    store = TableStore(table, "engage.interactions", 4, codec)  # type: ignore[arg-type]
    stored, first, second = UserState(), UserState(), UserState()
    stored.events, first.events, second.events = 1, 2, 3
    table.data[b"u1"] = codec.encode(stored)
    batch1 = store.changelog_groups({"u1": first}, {})
    store.stage(batch1)
    first.events = 99  # the live object changes later: the staged record does not
    loaded = store.load("u1")
    assert loaded is not None and loaded.events == 2
    batch2 = store.changelog_groups({"u1": second}, {})
    store.stage(batch2)
    held = {0, 1, 2, 3}
    for group in batch1:  # the first batch stored: the second's record is still read
        store.apply_local(group, held)
    assert codec.decode(table.data[b"u1"]).events == 2
    assert (store.load("u1") or UserState()).events == 3
    for group in batch2:
        store.apply_local(group, held)
    assert store.staged == {} and (store.load("u1") or UserState()).events == 3
    store.stage([[OutRecord("engage-users-changelog", b"u2", codec.encode(first), 0)]])
    store.discard_staged()  # dropped: only what is stored is read
    assert store.load("u2") is None and store.staged == {}
