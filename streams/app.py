"""The Faust application: topics, the user-state table, agents, timers and web views.

Thin by design: records go to streams.processor.ScoringShell, which drives the pure engine;
this module only adapts Faust's streams, table and producer to it.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faust
from faust import streams as faust_streams
from faust.types import TP

from scoring.config import EngageConfig
from scoring.partitioning import partition_for_user
from scoring.state import UserState, decode_state, encode_state
from sinks.metrics import Metrics
from streams.churn_shell import ChurnShell
from streams.processor import InputRecord, OutRecord, ScoringShell
from streams.routing import UserPartitionRouter
from streams.settings import WorkerSettings

log = logging.getLogger("engage.worker")


class _PartitionMessage:
    __slots__ = ("partition", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic  # the input topic, which the table is co-partitioned with
        self.partition = partition


class _PartitionEvent:
    """Stands in for Faust's "current event" while the shell reads or writes a user's state.

    Faust picks a table write's changelog partition, and the RocksDB store its per-partition
    database, from the current event. Writes are coalesced at the end of a batch, when the
    current event (if any) belongs to another partition; the shell knows each user's own.
    """

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _PartitionMessage(topic, partition)


@contextmanager
def _on_partition(topic: str, partition: int) -> Iterator[None]:
    marker = _PartitionEvent(topic, partition)
    token = faust_streams._current_event.set(weakref.ref(marker))  # type: ignore[arg-type]
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


class TableStore:
    """ScoringShell's StateStore over the Faust table (values: msgpack-encoded UserState)."""

    def __init__(self, table: faust.Table[str, bytes], topic: str, partitions: int) -> None:
        self.table = table
        self.topic = topic
        self.partitions = partitions

    def load(self, user_id: str) -> UserState | None:
        with _on_partition(self.topic, partition_for_user(user_id, self.partitions)):
            raw = self.table.get(user_id)
        return decode_state(raw) if raw is not None else None

    def save(self, user_id: str, partition: int, state: UserState) -> None:
        with _on_partition(self.topic, partition):
            self.table[user_id] = encode_state(state)

    def items(self) -> Iterable[tuple[str, UserState]]:
        for key, raw in list(self.table.items()):
            yield key, decode_state(raw)


class EngageWorker:
    """Builds the Faust app and holds what its agents share."""

    def __init__(self, settings: WorkerSettings, config: EngageConfig, metrics: Metrics) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics
        names = settings.names
        self.names = names
        self.app = faust.App(
            settings.app_id,
            broker=settings.broker_url,
            store=settings.store_url,
            datadir=str(_ensure_dir(settings.data_dir / settings.app_id)),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.topic_policy.replication_factor,
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
            web_enabled=True,
            web_bind=settings.bind_address,
            web_host=settings.web_host,  # other workers forward user lookups here
            Router=UserPartitionRouter,  # ...to the owner of the user's partition
            web_port=settings.web_port,
            web_in_thread=False,
            producer_linger_ms=5,
            broker_commit_interval=1.0,
            broker_session_timeout=10.0,  # a crashed worker's partitions move on in 10 s
            broker_heartbeat_interval=3.0,
            table_standby_replicas=settings.standby_replicas,
            logging_config=None,
            **settings.security.faust_settings(),
        )
        app = self.app
        self.table: faust.Table[str, bytes] = faust.Table(
            app=app,
            name="users",
            partitions=settings.partitions,
            key_type=str,  # str and bytes give Faust's "raw" serializers both ways
            value_type=bytes,
            help="Per-user scoring state (msgpack UserState), changelog-backed.",
            extra_topic_configs=settings.topic_policy.internal_topic_config(),
        )
        app.tables.add(self.table)
        self.churn = ChurnShell(config, metrics, settings)
        from streams.engine_factory import build_engine

        self.engine = build_engine(
            config, churn=self.churn.hooks, metrics=metrics, clock_ms=_wall_ms
        )
        self.shell = ScoringShell(
            config=config,
            engine=self.engine,
            store=TableStore(self.table, names.interactions, settings.partitions),
            names=names,
            partitions=settings.partitions,
            metrics=metrics,
            idle_advance_ms=int(settings.idle_advance_s * 1000),
        )
        self._topics: dict[str, faust.TopicT] = {}
        self.input_channel = app.topic(
            names.interactions, names.rekeyed, names.ticks,
            key_serializer="raw", value_serializer="raw",
            partitions=settings.partitions, internal=False,
        )
        self._register()

    def topic(self, name: str) -> faust.TopicT:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = self.app.topic(
                name, key_serializer="raw", value_serializer="raw", internal=False
            )
        return topic

    async def send_all(self, outbox: list[OutRecord]) -> None:
        """Hand records straight to the producer (Faust's Topic.send adds codec and callback
        work per record). Not awaited one by one: Faust flushes the producer before every
        offset commit, so nothing is committed past a record that was not delivered."""
        send = self.app.producer.send
        for rec in outbox:
            await send(rec.topic, rec.key, rec.value, rec.partition, None, None)

    def _register(self) -> None:
        app, settings, shell = self.app, self.settings, self.shell

        @app.agent(self.input_channel, name="score", concurrency=1)
        async def score(stream: faust.StreamT[Any]) -> None:
            batches = stream.take_events(  # type: ignore[attr-defined]
                settings.batch_max, settings.batch_within_s
            )
            async for events in batches:
                records = [
                    InputRecord(
                        e.message.topic, e.message.partition, e.message.offset,
                        e.message.key, e.message.value,
                    )
                    for e in events
                ]
                result = shell.handle_batch(records)
                await self.send_all(result.outbox)

        @app.timer(settings.tick_interval_s, on_leader=True)
        async def tick() -> None:
            """Ticks on every input partition let idle partitions' watermarks move."""
            value = b'{"tick": %d}' % _wall_ms()
            ticks = self.topic(self.names.ticks)
            for partition in range(settings.partitions):
                await ticks.send(key=None, value=value, partition=partition)

        @app.timer(5.0)
        async def gauges() -> None:
            self.metrics.users_tracked.set(len(self.table))

        async def on_assignment_change(sender: Any, tps: set[TP] | None = None, **_: Any) -> None:
            names_in = {self.names.interactions, self.names.rekeyed, self.names.ticks}
            shell.forget_partitions({tp.partition for tp in tps or () if tp.topic in names_in})

        app.on_partitions_revoked.connect(on_assignment_change)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(on_assignment_change)  # type: ignore[arg-type]
        self.churn.register(self)
        from streams.web import register_views

        register_views(self)


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _ensure_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
