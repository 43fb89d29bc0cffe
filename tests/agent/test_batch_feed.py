"""The scoring inputs' way from Faust's consumer to the score loop (streams/batch_feed.py), on
a real Faust app, consumer and conductor (not started: no broker is needed to hand records
on). The broker-level proof is the integration suite under load: crash recovery, rebalances,
several workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import faust
import pytest
from aiokafka import TopicPartition
from faust.types import TP, Message

from sinks.metrics import Metrics
from streams.batch_feed import BatchFeed
from streams.monitoring import attach_monitoring

INPUTS, OTHER = TP("interactions", 0), TP("churn.examples", 0)


@pytest.fixture
async def feed() -> AsyncIterator[BatchFeed]:
    app = faust.App("feed-test", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False, stream_buffer_maxsize=8)
    channel = app.topic("interactions", "ticks", key_serializer="raw", value_serializer="raw",
                        internal=False)
    made = BatchFeed(app, channel, max_records=3, within_s=0.05)
    attach_monitoring(app, Metrics())  # the worker's monitor ...
    app.sensors.add(app.monitor)  # ... which Faust adds to its sensors as the app starts
    await app.topics._update_indices()  # what subscribing does: the topics ack
    app.flow_control.resume()  # as a started worker's
    app.consumer._set_active_tps({INPUTS, OTHER})
    yield made


def message(offset: int, tp: TP = INPUTS, generation: int = 1) -> Message:
    """As Faust's aiokafka driver makes them: `tp` is aiokafka's TopicPartition."""
    return Message(tp.topic, tp.partition, offset, 0.0, 0, [], b"u1", b"{}", None,
                   tp=TopicPartition(tp.topic, tp.partition), generation_id=generation)


async def hand_on(feed: BatchFeed, *offsets: int) -> None:
    handler = feed.app.topics._build_handler(INPUTS, set())  # type: ignore[attr-defined]
    for offset in offsets:
        await asyncio.wait_for(handler(message(offset)), 1)


async def test_the_inputs_go_to_the_feed_and_other_topics_to_faust(feed: BatchFeed) -> None:
    build = feed.app.topics._build_handler  # type: ignore[attr-defined]
    assert build(INPUTS, set()) == feed._on_message
    assert build(TP("ticks", 3), set()) == feed._on_message
    assert build(OTHER, set()) != feed._on_message


async def test_a_full_batch_comes_at_once_and_the_rest_within_the_window(
    feed: BatchFeed,
) -> None:
    await hand_on(feed, 10, 11, 12, 13)
    full = await asyncio.wait_for(feed.next_batch(), 0.04)  # no wait for the window
    assert [m.offset for m in full] == [10, 11, 12]
    rest = await asyncio.wait_for(feed.next_batch(), 1)
    assert [m.offset for m in rest] == [13]


async def test_acknowledged_records_are_committed_and_left_ones_are_not(
    feed: BatchFeed,
) -> None:
    consumer = feed.app.consumer
    await hand_on(feed, 0, 1, 2)
    batch = await feed.next_batch()
    assert len(consumer._unacked_messages) == 3  # tracked from the take
    feed.acknowledge(batch[:2])
    feed.leave_uncommitted(batch[2])
    assert sorted(consumer._acked[INPUTS]) == [0, 1]
    assert consumer._new_offset(INPUTS) == 2  # the commit stops before offset 2
    assert not consumer._unacked_messages
    monitor = feed.app.monitor
    assert (monitor.messages_received_total, monitor.messages_active) == (3, 0)


async def test_a_full_feed_takes_its_partition_out_of_the_fetch_until_it_drains(
    feed: BatchFeed,
) -> None:
    consumer = feed.app.consumer
    await hand_on(feed, *range(7))
    assert INPUTS in consumer._get_active_partitions()
    await hand_on(feed, 7)  # the limit (stream_buffer_maxsize 8)
    assert INPUTS not in consumer._get_active_partitions()
    assert OTHER in consumer._get_active_partitions()
    await feed.next_batch()  # 5 left: above 40 % of 8
    assert INPUTS not in consumer._get_active_partitions()
    await feed.next_batch()  # 2 left
    assert INPUTS in consumer._get_active_partitions()


async def test_records_wait_while_flow_is_suspended_and_a_clear_empties_the_feed(
    feed: BatchFeed,
) -> None:
    flow = feed.app.flow_control
    await hand_on(feed, 0, 1)
    flow.suspend()
    waiting = asyncio.ensure_future(hand_on(feed, 2))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    flow.clear()  # a rebalance: what was read before it comes again
    assert feed._pending == []
    flow.resume()
    await waiting
    assert [m.offset for m in await feed.next_batch()] == [2]
