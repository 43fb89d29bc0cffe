"""What the worker changes in Faust's consumer: records taken from aiokafka and not handed
on are read again, and the resume after a recovery keeps records queued after the worker's
own seek (streams/faust_patches.py; the broker-level proof is the web-routing and
rebalance tests under load)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.faust_patches import (
    first_undelivered,
    keep_queues_at_next_resume,
    rewind_undelivered,
)


def test_the_first_record_not_handed_on_is_found() -> None:
    offsets = [5, 6, 7, 8]
    assert first_undelivered(offsets, delivered=None, read_before=None) == 5
    assert first_undelivered(offsets, delivered=6, read_before=None) == 7
    assert first_undelivered(offsets, delivered=8, read_before=None) is None
    # below the read offset Faust drops a record on purpose (read already): not a loss
    assert first_undelivered(offsets, delivered=None, read_before=7) == 7
    assert first_undelivered([3, 4], delivered=None, read_before=9) is None


@dataclass
class Record:
    offset: int


@dataclass
class SeekingConsumer:
    """The three calls rewind_undelivered makes of Faust's consumer, recorded."""

    positions: dict[TP, int]
    assigned: set[TP]
    seeks: list[tuple[TP, int]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def position(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.positions[tp] = offset


def test_a_partition_past_records_not_handed_on_goes_back_to_the_first() -> None:
    dropped, handed_on, sought_meanwhile, gone = (TP("in", 0), TP("in", 1), TP("cl", 0),
                                                  TP("in", 2))
    consumer = SeekingConsumer(
        positions={dropped: 28, handed_on: 10, sought_meanwhile: 0, gone: 50},
        assigned={dropped, handed_on, sought_meanwhile},
    )
    fetched = {
        dropped: [Record(o) for o in range(0, 28)],  # 0..11 handed on, 12.. dropped
        handed_on: [Record(o) for o in range(5, 10)],
        sought_meanwhile: [Record(0)],  # dropped, but a seek put the position back on it
        gone: [Record(o) for o in range(40, 50)],  # no longer assigned: not this worker's
    }
    asyncio.run(rewind_undelivered(consumer, fetched, {dropped: 11, handed_on: 9}, {}))
    assert consumer.seeks == [(dropped, 12)]


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
