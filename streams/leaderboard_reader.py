"""Every worker's copy of every partition's leaderboards (topic engagement.leaderboards,
compacted, one record per input partition), so any worker answers `/leaderboards/` for the
whole cluster. Read from the beginning with a group-less consumer, like the models topic."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from scoring.leaderboards import merge_boards

log = logging.getLogger("engage.leaderboards")


class LeaderboardReader:
    """Keeps each partition's latest record as read, and decodes it only when a view asks:
    every scoring batch rewrites the boards of the partitions it touched, and decoding each
    of them as it came cost a busy worker about 5 % of its time (py-spy) for views that are
    asked for now and then."""

    def __init__(self, bootstrap: str, topic: str, **client: Any) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.client = client
        self._raw: dict[int, bytes] = {}  # the latest record of each partition (its key)
        self._boards: dict[int, dict[str, list[list[float | str]]]] = {}
        self.caught_up = asyncio.Event()  # read to the end once

    @property
    def boards(self) -> dict[int, dict[str, list[list[float | str]]]]:
        """Every partition's boards, decoded from the records read since the last call."""
        raw, self._raw = self._raw, {}
        for value in raw.values():
            self._decode(value)
        return self._boards

    def top(self, period: str, measure: str, n: int) -> tuple[str, list[tuple[str, float]]]:
        return merge_boards(self.boards.values(), period, measure, n)

    def _take(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        try:
            partition: int | None = int(key) if key is not None else None
        except ValueError:
            partition = None
        if partition is None:  # keyed otherwise (not by this worker): decode it now
            self._decode(value)
        else:
            self._raw[partition] = value

    def _decode(self, value: bytes) -> None:
        try:
            record = msgspec.json.decode(value)
            self._boards[int(record["partition"])] = record["boards"]
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            log.error("unreadable leaderboard record: %s", exc)

    async def run(self) -> None:
        """Follow the topic for good (restarted after broker trouble)."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leaderboard reader failed; retrying in 2s")
                await asyncio.sleep(2)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", **self.client,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning()
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        self._take(message.key, message.value)
                if not self.caught_up.is_set() and await consumer.position(tp) >= end:
                    self.caught_up.set()
        finally:
            await consumer.stop()
