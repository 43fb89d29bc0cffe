"""The Faust application: topics, the user-state table, agents, timers and web views.

Thin by design: records go to streams.processor.ScoringShell, which drives the pure engine;
this module only adapts Faust's streams, table and producer to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust import streams as faust_streams
from faust.stores.memory import Store as MemoryStore
from faust.types import TP

from scoring.config import EngageConfig
from scoring.partition_state import (
    PartitionState,
    decode_partition_state,
    encode_partition_state,
    is_partition_key,
    partition_key,
)
from scoring.partitioning import partition_for_user
from scoring.state import UserState
from scoring.state_codec import StateCodec, StateVersionError, codec_for
from sinks.kafka_outbox import GroupTooLarge, KafkaOutbox, OutputRecord, SentBatch
from sinks.metrics import Metrics
from streams import faust_patches
from streams.batch_feed import BatchFeed
from streams.churn_shell import ChurnShell
from streams.consumer_state import describe_partition
from streams.leaderboard_reader import LeaderboardReader
from streams.pipeline import Delivery, DeliveryPipeline
from streams.population_exchange import PopulationExchange
from streams.processor import InputRecord, OutRecord, ScoringShell
from streams.settings import WorkerSettings

log = logging.getLogger("engage.worker")
faust_patches.install()
# The largest record batch a worker writes to its changelog: one batch of input records'
# user states and partition record, per changelog partition (the topic is created to take it).
CHANGELOG_BATCH_BYTES = 8 * 1024 * 1024
# The producer's record batch per output partition. aiokafka sends one request to a broker at
# a time, and a send that finds its partition's batch full waits until that batch is sent:
# with Faust's 16 KB, a batch's outputs (~600 bytes a score record) took a broker round trip
# per 16 KB each. A quarter of the broker's default 1 MB message limit.
PRODUCER_BATCH_BYTES = 256 * 1024
# How long a revocation waits for a batch in flight (within the 10 s session timeout)
REVOKE_WAIT_S = 8.0
# batches in flight between scoring and storing: one storing its state while the next one's
# outputs are acknowledged and a third is scored (streams/pipeline.py)
PIPELINE_DEPTH = 2
# records scored between two turns of the event loop (~0.1 s of scoring)
YIELD_EVERY = 1000
# how often the group leader re-reads metadata, and rebalances partitions it could not see
METADATA_REFRESH_MS = 10_000


async def send_record_batches(producer: Any, records: Sequence[OutputRecord]) -> list[SentBatch]:
    """`records` as record batches of an aiokafka producer, one per topic partition (more
    when one outgrows the producer's batch size), each in the order given. A record without
    a partition goes where the producer would send it alone (its partitioner, on the key)."""
    groups: dict[tuple[str, int], list[OutputRecord]] = {}
    with_metadata: set[str] = set()  # topics whose partitions the producer knows
    for record in records:
        partition = record.partition
        if partition is None:
            if record.topic not in with_metadata:
                await producer.client._wait_on_metadata(record.topic)  # at once when known
                with_metadata.add(record.topic)
            partition = producer._partition(record.topic, None, record.key, record.value,
                                            record.key, record.value)
        group = groups.get((record.topic, partition))
        if group is None:
            group = groups[record.topic, partition] = []
        group.append(record)
    sent: list[SentBatch] = []
    for (topic, partition), group in groups.items():
        for chunk, batch in _record_batches(producer, group):
            try:
                future = await producer.send_batch(batch, topic, partition=partition)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                sent.append((chunk, None, exc))
            else:
                sent.append((chunk, future, None))
    return sent


def _record_batches(
    producer: Any, records: list[OutputRecord]
) -> list[tuple[list[OutputRecord], Any]]:
    """`records` (one topic partition's) in record batches of the producer's size and
    compression: (the records of each, its batch)."""
    out: list[tuple[list[OutputRecord], Any]] = []
    chunk: list[OutputRecord] = []
    batch = producer.create_batch()
    for record in records:
        if not _append(batch, record):  # full (a first record always fits)
            out.append((chunk, batch))
            chunk, batch = [], producer.create_batch()
            _append(batch, record)
        chunk.append(record)
    out.append((chunk, batch))
    return out


def _append(batch: Any, record: OutputRecord) -> bool:
    """`record` added to an aiokafka record batch; False when the batch is full."""
    headers = list(record.headers) if record.headers else []  # the builder takes a list
    return batch.append(timestamp=None, key=record.key, value=record.value,
                        headers=headers) is not None


@dataclass(slots=True)
class ScoredBatch:
    """A batch between scoring and storing."""

    records: list[InputRecord]
    outbox: list[OutRecord]
    changelog: list[list[OutRecord]]  # one group (one record batch) per changelog partition
    done: list[Any]  # the runtime's records to acknowledge once the state is stored


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
    """ScoringShell's StateStore over the Faust table: keys are raw UTF-8 user ids (so Faust
    routes a lookup to the partition Kafka's partitioner gave the user), values msgpack.

    Each partition also keeps one record under a reserved key (scoring.partition_state).
    """

    def __init__(
        self, table: faust.Table[bytes, bytes], topic: str, partitions: int, codec: StateCodec
    ) -> None:
        self.table = table
        self.topic = topic
        self.partitions = partitions
        self.codec = codec
        # changelog records of batches scored but not yet stored (key -> the latest value):
        # the next batch is scored while they are delivered, and reads its users from here
        self.staged: dict[bytes, bytes] = {}

    def load(self, user_id: str) -> UserState | None:
        key = user_id.encode()
        raw = self.staged.get(key)
        if raw is None:
            store = self.table.data
            if isinstance(store, MemoryStore):  # one dict: no partition to find, no sensor
                raw = store.data.get(key)
            else:
                with _on_partition(self.topic, partition_for_user(user_id, self.partitions)):
                    raw = self.table.get(key)
        return self.codec.decode(raw) if raw is not None else None

    def save(self, user_id: str, partition: int, state: UserState) -> None:
        with _on_partition(self.topic, partition):
            self.table[user_id.encode()] = self.codec.encode(state)

    # -- writes whose changelog records the worker sends and awaits itself -------------------
    # Faust sends a table's changelog records without waiting, and commits input offsets
    # even when one of them failed (the broker went away): the next owner would then rebuild
    # a state older than the offsets say. The worker instead sends them through its outbox,
    # waits for every acknowledgement, and only then updates the local store.

    def changelog_groups(
        self, states: dict[str, UserState], partitions: dict[int, PartitionState]
    ) -> list[list[OutRecord]]:
        """Per changelog partition, its users' states and then its partition record: each
        group is written as one record batch (all or none), then applied here."""
        topic = self.table.changelog_topic.get_topic_name()
        groups: dict[int, list[OutRecord]] = {}
        for user_id, state in states.items():
            p = partition_for_user(user_id, self.partitions)
            groups.setdefault(p, []).append(
                OutRecord(topic, user_id.encode(), self.codec.encode(state), p))
        for p, clock in partitions.items():
            groups.setdefault(p, []).append(
                OutRecord(topic, partition_key(p).encode(), encode_partition_state(clock), p))
        return list(groups.values())

    def stage(self, groups: list[list[OutRecord]]) -> None:
        """A scored batch's changelog records, readable before they are stored."""
        staged = self.staged
        for group in groups:
            for record in group:
                assert record.key is not None and record.value is not None
                staged[record.key] = record.value

    def discard_staged(self) -> None:
        """The batches in flight were dropped: read only what is stored."""
        self.staged.clear()

    def apply_local(self, records: list[OutRecord], held: set[int]) -> None:
        """Put changelog records already acknowledged into this worker's store (those of
        partitions it still holds: a partition given up meanwhile is its new owner's), and
        read them from there unless a later batch staged another value."""
        store = self.table.data
        staged = self.staged
        for record in records:
            assert record.partition is not None and record.key is not None
            if record.partition in held:
                with _on_partition(self.topic, record.partition):
                    store[record.key] = record.value
            if staged.get(record.key) is record.value:
                del staged[record.key]

    def load_partition(self, partition: int) -> PartitionState | None:
        key = partition_key(partition).encode()
        raw = self.staged.get(key)
        if raw is None:
            with _on_partition(self.topic, partition):
                raw = self.table.get(key)
        return decode_partition_state(raw) if raw is not None else None

    def save_partition(self, partition: int, state: PartitionState) -> None:
        with _on_partition(self.topic, partition):
            self.table[partition_key(partition).encode()] = encode_partition_state(state)

    def _keys(self) -> list[bytes]:
        return list(self.table.keys())

    def users(self, partition: int) -> Iterable[tuple[str, UserState]]:
        """The partition's users as stored (one scan, when a partition is taken over)."""
        for key in self._keys():
            user_id = key.decode()
            if is_partition_key(user_id):
                continue
            if partition_for_user(user_id, self.partitions) != partition:
                continue
            try:
                state = self.load(user_id)
            except StateVersionError as exc:
                log.error("user %r: %s", user_id, exc)
                continue
            if state is not None:
                yield user_id, state

    def all_users(self) -> Iterable[tuple[str, UserState]]:
        for key in self._keys():
            user_id = key.decode()
            if not is_partition_key(user_id):
                with contextlib.suppress(StateVersionError):
                    state = self.load(user_id)
                    if state is not None:
                        yield user_id, state

    def user_count(self) -> int:
        return sum(1 for key in self._keys() if not key.startswith(b"\x00"))

    def drop_local(self, partitions: set[int]) -> int:
        """Forget, on this worker only, the keys of partitions it gave up (the changelog keeps
        them for their new owner). Faust's RocksDB store closes those databases itself; its
        memory store would keep them for good."""
        store = self.table.data
        data = getattr(store, "data", None)
        if not isinstance(data, dict) or not partitions:
            return 0
        doomed = []
        for key in list(data):
            text = key.decode() if isinstance(key, bytes) else str(key)
            if is_partition_key(text):
                partition = int(text.rsplit("/", 1)[1])
            else:
                partition = partition_for_user(text, self.partitions)
            if partition in partitions:
                doomed.append(key)
        for key in doomed:
            del data[key]
        return len(doomed)


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
            web_bind=settings.web_bind,
            web_host=settings.web_host,  # what other workers call to reach this one's views
            web_port=settings.web_port,
            web_in_thread=False,
            consumer_max_fetch_size=settings.fetch_max_bytes,
            producer_linger_ms=0,  # every send is awaited at once: lingering only waits
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            broker_commit_interval=1.0,
            broker_session_timeout=10.0,  # a crashed worker's partitions move on in 10 s
            broker_heartbeat_interval=3.0,
            # The group leader assigns what its metadata shows. Metadata fetched while the
            # broker is fenced or restarting can lack a topic's partitions: those go to no
            # worker, and only the leader's next metadata refresh (which compares partition
            # counts with what it assigned) rebalances them. aiokafka refreshes every 5 min
            # by default; a stall that long is what the crash tests saw.
            consumer_metadata_max_age_ms=METADATA_REFRESH_MS,
            table_standby_replicas=settings.standby_replicas,
            # Shutdown must not wait for records a batch holds: their offsets are not
            # committed, and the next owner applies them once (input positions).
            stream_wait_empty=False,
            logging_config=None,
            **settings.security.faust_settings(),
        )
        app = self.app
        self.table: faust.Table[bytes, bytes] = faust.Table(
            app=app,
            name="users",
            partitions=settings.partitions,
            key_type=bytes,  # bytes give Faust's raw serializers: keys are plain user ids
            value_type=bytes,
            help="Per-user scoring state (msgpack UserState) and one record per partition.",
            extra_topic_configs={**settings.topic_policy.internal_topic_config(),
                                 "max.message.bytes": str(CHANGELOG_BATCH_BYTES)},
        )
        app.tables.add(self.table)
        self.churn = ChurnShell(config, metrics, settings)
        from streams.engine_factory import build_engine

        self.engine = build_engine(
            config, churn=self.churn.hooks, on_suppressed=metrics.count_suppressed
        )
        self.store = TableStore(
            self.table, names.interactions, settings.partitions, codec_for(config)
        )
        self.population = PopulationExchange(settings.broker, names, metrics.registry)
        self.shell = ScoringShell(
            config=config,
            engine=self.engine,
            store=self.store,
            names=names,
            partitions=settings.partitions,
            metrics=metrics,
            idle_advance_ms=int(settings.idle_advance_s * 1000),
            exchange=self.population.exchange,
            max_reference_wait_ms=int(settings.reference_wait_s * 1000),
        )
        self.outbox = KafkaOutbox(self._send, names.dlq, metrics, send_group=self._send_group,
                                  send_batches=self._send_batches)
        self.leaderboards = LeaderboardReader(settings.broker, names.leaderboards)
        self.health = Health()
        self.held: set[int] = set()  # input partitions this worker owns
        # batches scored, on their way to being stored; a revocation waits until none is
        # (`quiet`), so a partition's next owner never sees this worker's outputs land
        # after its own
        self.pipeline = DeliveryPipeline(PIPELINE_DEPTH)
        self._dropped = False  # a batch in flight was dropped: forget partitions before more
        self.settled_generation = -1  # the group generation whose table recovery is over
        self._topics: dict[str, faust.TopicT] = {}
        self.input_channel = app.topic(
            *names.scoring_inputs, key_serializer="raw", value_serializer="raw",
            partitions=settings.partitions, internal=False,
        )
        self.feed = BatchFeed(app, self.input_channel, settings.batch_max,
                              settings.batch_within_s)
        self._register()

    def topic(self, name: str) -> faust.TopicT:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = self.app.topic(
                name, key_serializer="raw", value_serializer="raw", internal=False
            )
        return topic

    async def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        headers: Sequence[tuple[str, bytes]] | None,
    ) -> Awaitable[Any]:
        """Straight to the producer (Faust's Topic.send adds codec work per record)."""
        return await self.app.producer.send(
            topic, key, value, partition, None, list(headers) if headers else None
        )

    async def _send_group(
        self, topic: str, partition: int, records: Sequence[OutputRecord]
    ) -> Awaitable[Any]:
        """One record batch on one partition (aiokafka's batch API under Faust's producer):
        the broker appends it whole or not at all."""
        from aiokafka.producer.message_accumulator import BatchBuilder

        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        batch = BatchBuilder(CHANGELOG_BATCH_BYTES, 0)  # 0: no compression
        for record in records:
            if not _append(batch, record):
                raise GroupTooLarge(f"{len(records)} records exceed one batch of "
                                    f"{CHANGELOG_BATCH_BYTES} bytes")
        future: Awaitable[Any] = await producer.send_batch(batch, topic, partition=partition)
        return future

    async def _send_batches(self, records: Sequence[OutputRecord]) -> list[SentBatch]:
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        return await send_record_batches(producer, records)

    async def process(
        self, records: list[InputRecord], generations: Sequence[int | None]
    ) -> list[bool]:
        """One batch: scored, then handed to the pipeline, which delivers every output and
        then stores the states that say so while the next batch is scored; which records it
        took (the others must stay uncommitted).

        It takes only records fetched in the current group generation, of partitions this
        worker holds. After a rebalance Faust seeks every partition back to its committed
        offset, so records fetched before it come again, in order; taking the old copies
        could put a later record ahead of earlier ones that were never stored, and input
        positions would then skip those as done. Batches of an older generation still in
        flight finish first. A rebalance can also come while a batch is delivered, and Faust
        then rebuilds the table from the changelog under it: such a batch is not stored, nor
        is any batch scored after it, what the worker held of its partitions is dropped, and
        their records come again the same way (outputs sent twice carry the same ids).

        Records whose partition waits for other partitions' population snapshots are kept
        unacknowledged (streams/holding.py) and acknowledged in the batch that applies
        them."""
        while True:
            generation = await self._settled()
            if self._dropped or self.pipeline.generations() - {generation}:
                await self.pipeline.drain()  # stored, or dropped with all scored after them
                if self._dropped:
                    self._forget_dropped()
                continue
            waited_from = time.monotonic()
            await self.pipeline.room()
            self.metrics.batch_phase.labels("waiting").observe(time.monotonic() - waited_from)
            await self.population.wait_caught_up()  # bounded; once per worker
            if self._dropped or self._rebalanced_since(generation):
                continue
            assigned = self.app.consumer.assignment()
            owned = {tp: TP(*tp) in assigned for tp in {(r.topic, r.partition) for r in records}}
            taken = [g == generation and owned[r.topic, r.partition]
                     for r, g in zip(records, generations, strict=True)]
            mine = [r for r, take in zip(records, taken, strict=True) if take]
            if mine:
                await self._score(mine, generation)
            return taken

    async def _score(self, mine: list[InputRecord], generation: int) -> None:
        """Score a batch and start its delivery. Its states are encoded now, as scored: the
        next batch, scored while this one is delivered, reads its users from these records
        and changes only copies of its own.

        The loop runs other work every `YIELD_EVERY` records: records fetched meanwhile join
        the feed, deliveries in flight move on, and web requests (probes) are answered
        within ~0.1 s, not after the whole batch. A revocation waits for the batch (`quiet`
        is clear), and a batch dropped meanwhile is only acted on before the next one."""
        started = time.monotonic()
        self.pipeline.scoring()
        scoring = self.shell.start_batch(len(mine))
        try:
            for i, record in enumerate(mine):
                if i and not i % YIELD_EVERY:
                    await asyncio.sleep(0)
                    if self._dropped or self._rebalanced_since(generation):
                        # a rebalance began (a revocation that waited long), or a batch in
                        # flight, on whose states this one is scored, was dropped
                        self.pipeline.scored_nothing()
                        self._give_back(mine, "while a batch was scored")
                        return
                scoring.add(record)
        except asyncio.CancelledError:  # the worker stops: nothing of the batch is kept
            self.pipeline.scored_nothing()
            raise
        result = scoring.finish()
        result.outbox.extend(self.population.outbox(self.shell.driver))  # closed days
        # one record batch per changelog partition: never a partition record without its
        # users, nor users whose additive partition counts (population, budgets) are not
        groups = self.store.changelog_groups(result.states, result.partitions)
        self.store.stage(groups)
        # done once stored: the batch's records but those waiting for other partitions'
        # snapshots, and records held in an earlier batch that were applied in this one
        waiting = {id(record) for record in result.held}
        batch = ScoredBatch(
            mine, result.outbox, groups,
            [r.handle for r in mine if id(r) not in waiting]
            + [r.handle for r in result.released],
        )
        self.metrics.batch_phase.labels("score").observe(time.monotonic() - started)
        self.pipeline.submit(generation, lambda this, previous: self._deliver(batch, this,
                                                                             previous))

    async def _deliver(self, batch: ScoredBatch, this: Delivery, previous: Delivery | None
                       ) -> bool:
        """Deliver a batch's outputs (after the batch before it delivered its own), then
        store its state if no rebalance came meanwhile and the batch before it was stored
        (False: nothing was stored)."""
        phase = self.metrics.batch_phase
        try:
            if previous is not None:
                await previous.outputs_done.wait()
            # sent even when the batch will be dropped: some outputs (the population
            # snapshots of days a partition closed) are made once, and the records that come
            # again do not make them again; the others come again with the same ids
            started = time.monotonic()
            await self.outbox.deliver(batch.outbox)
            this.outputs_done.set()
            delivered = time.monotonic()
            phase.labels("outputs").observe(delivered - started)
            if previous is not None:
                await previous.stored()
            if not self._current(this.generation, previous):
                return self._drop(batch)
            stored_from = time.monotonic()
            await self.outbox.deliver_together(batch.changelog)
            phase.labels("changelog").observe(time.monotonic() - stored_from)
            for group in batch.changelog:
                self.store.apply_local(group, self.held)
            self.feed.acknowledge(batch.done)
            self.health.batch_done(batch.records)
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            if self.app.should_stop:  # the producer stopped under it: the records come again
                log.info("a batch was not stored: the worker is stopping")
                return False
            # Never reached by bad input (the shell dead-letters it): a bug. The batch's
            # state was not stored, so its records are not acknowledged as done either: stop
            # here, and the next owner takes them again.
            log.exception("delivering a batch failed; the worker stops so it is retried")
            self.metrics.internal_errors.labels("batch").inc()
            self.health.fatal = "a batch failed (see the log)"
            os._exit(70)

    def _current(self, generation: int, previous: Delivery | None) -> bool:
        """A batch may still be stored: no rebalance since it was taken, and the batch
        before it (whose states it was scored on) was stored or is on its way."""
        return not ((previous is not None and previous.failed())
                    or self._rebalanced_since(generation))

    def _rebalanced_since(self, generation: int) -> bool:
        return generation != self.app.consumer_generation_id or self.app.rebalancing

    def _drop(self, batch: ScoredBatch) -> bool:
        """Nothing of the batch is stored. Batches scored after it were scored on it and are
        dropped too."""
        self._give_back(batch.records, "during a batch")
        return False

    def _give_back(self, records: list[InputRecord], when: str) -> None:
        """Records whose effects are not kept come again; once no batch is in flight, the
        loop forgets what the worker held of its partitions (`_forget_dropped`)."""
        self._dropped = True
        for record in records:
            self.feed.leave_uncommitted(record.handle)
        log.info("a rebalance came %s: its records come again", when)

    def _forget_dropped(self) -> None:
        """After dropped batches: partitions are taken over afresh from the table."""
        self.store.discard_staged()
        self.shell.forget_partitions(set(self.shell.assigned))
        self._dropped = False

    def _guard_acks(self) -> None:
        """Only acknowledgements of records fetched in the current generation count towards
        commits. Faust's stream acknowledges the records of an old generation that it skips
        after a rebalance; their offsets, kept past the seek back to the committed offset,
        let a commit jump over records not yet scored again, lost if the worker then dies
        (the multi-worker test saw it). Dropping an old acknowledgement is always safe: the
        record comes again and its input position says whether it was applied. (The scoring
        inputs come through streams/batch_feed.py, acknowledged here; Faust's compiled stream
        iterator, for the other agents, writes acknowledgements without calling the
        consumer's `ack`, so the worker uses the pure-Python one and all of them come here.)"""
        consumer = self.app.consumer
        if getattr(consumer, "_engage_acks_guarded", False):
            return
        plain = consumer.ack

        def ack(message: Any) -> bool:
            fetched_in = message.generation_id
            if fetched_in is not None and fetched_in != self.app.consumer_generation_id:
                self.feed.leave_uncommitted(message)
                return False
            return bool(plain(message))

        consumer.ack = ack  # type: ignore[method-assign]
        consumer._engage_acks_guarded = True  # type: ignore[attr-defined]

    async def _score_and_store(self, mine: list[InputRecord], generation: int) -> bool:
        """Score a batch, deliver its outputs, and store its state if no rebalance came
        meanwhile (False: one did, and nothing was stored)."""
        phase = self.metrics.batch_phase
        started = time.monotonic()
        result = self.shell.handle_batch(mine)
        result.outbox.extend(self.population.outbox(self.shell.driver))  # closed days
        scored = time.monotonic()
        phase.labels("score").observe(scored - started)
        await self.outbox.deliver(result.outbox)
        delivered = time.monotonic()
        phase.labels("outputs").observe(delivered - scored)
        if generation == self.app.consumer_generation_id and not self.app.rebalancing:
            # one record batch per changelog partition: never a partition record without
            # its users, nor users whose additive partition counts (population, budgets)
            # are not
            groups = self.store.changelog_groups(result.states, result.partitions)
            await self.outbox.deliver_together(groups)
            phase.labels("changelog").observe(time.monotonic() - delivered)
            for group in groups:
                self.store.apply_local(group, self.held)
            # done: the batch's records but those waiting for other partitions' snapshots,
            # and records held in an earlier batch that were applied in this one
            waiting = {id(record) for record in result.held}
            self.feed.acknowledge([r.handle for r in mine if id(r) not in waiting]
                                  + [r.handle for r in result.released])
            self.health.batch_done(mine)
            return True
        return False

    async def _settled(self) -> int:
        """Wait until the current assignment's recovery is over; its generation."""
        app = self.app
        waited = 0.0
        while not self._assignment_settled():
            if waited > 120 and not app.rebalancing and not app.in_recovery:
                log.warning("no recovery signal for generation %s after %.0f s; going on",
                            app.consumer_generation_id, waited)
                self.settled_generation = app.consumer_generation_id
                break
            await asyncio.sleep(0.05)
            waited += 0.05
        return int(app.consumer_generation_id)

    def _register(self) -> None:
        app, settings, shell = self.app, self.settings, self.shell

        @app.task
        async def score() -> None:
            """The scoring loop: batches from the feed until the worker stops."""
            feed = self.feed
            while True:
                try:
                    messages = await feed.next_batch()
                    records = [
                        InputRecord(m.topic, m.partition, m.offset, m.key, m.value,
                                    _headers(m.headers), m)
                        for m in messages
                    ]
                    taken = await self.process(records, [m.generation_id for m in messages])
                    for message, took in zip(messages, taken, strict=True):
                        if not took:
                            feed.leave_uncommitted(message)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Never reached by bad input (the shell dead-letters it): a bug. The
                    # batch's state was not stored, so its records are not acknowledged
                    # as done either: stop here, and the next owner takes them again.
                    log.exception("batch failed; the worker stops so the batch is retried")
                    self.metrics.internal_errors.labels("batch").inc()
                    self.health.fatal = "a batch failed (see the log)"
                    os._exit(70)

        @app.timer(settings.tick_interval_s, on_leader=True)
        async def tick() -> None:
            """Ticks on every input partition let idle partitions' watermarks move."""
            value = b'{"tick": %d}' % _wall_ms()
            ticks = self.topic(self.names.ticks)
            for partition in range(settings.partitions):
                await ticks.send(key=None, value=value, partition=partition)

        @app.timer(5.0)
        async def gauges() -> None:
            self.metrics.users_tracked.set(self.store.user_count())
            await self._refresh_ends()
            self.metrics.ready.set(1 if self.readiness()[0] else 0)
            self._report_stalls()

        names_in = set(self.names.scoring_inputs)

        async def on_assigned(sender: Any, assigned: set[TP] | None = None, **_: Any) -> None:
            """The new assignment (Faust revokes everything first, then reassigns, and
            recovers only partitions this worker did not hold): forget what was given up,
            take over what is new, keep the rest as it is."""
            self._guard_acks()
            now = {tp.partition for tp in assigned or () if tp.topic in names_in}
            gone, added = self.held - now, now - self.held
            shell.forget_partitions(gone | added)  # new ones: taken over on their first record
            dropped = self.store.drop_local(gone)
            if gone or added:
                log.info("partitions given up %s (%d keys forgotten), taken over %s",
                         sorted(gone), dropped, sorted(added))
            self.held = now
            self.health.assign({tp for tp in assigned or () if tp.topic in names_in})

        app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

        async def on_revoked(sender: Any, revoked: set[TP] | None = None, **_: Any) -> None:
            """Faust awaits this before the group moves partitions: let a batch in flight
            finish delivering (bounded), so its outputs never land after the next owner's."""
            if not self.pipeline.quiet.is_set():
                try:
                    await asyncio.wait_for(self.pipeline.quiet.wait(), REVOKE_WAIT_S)
                except TimeoutError:
                    log.warning("a batch still in flight after %.0f s; revoking anyway",
                                REVOKE_WAIT_S)

        app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]

        async def on_settled(sender: Any, **_: Any) -> None:
            """Faust finished recovering the table for this assignment. Right after this
            signal it resumes the input partitions, seeks them back to their committed
            offsets, and only then resumes flow control, which empties the agents' queues.
            The conductor queues records without waiting for flow control, so records read
            in between were emptied out of those queues: never scored, yet read, so later
            records were committed past them. And a partition never committed is not sought
            at all: it went on from where the consumer had fetched to before the rebalance.
            Both lost records of partitions that kept their owner through a rebalance (the
            multi-worker test; tests/chaos/first_batch_rebalance.py shows it every time; CI
            lost a partition's first records). So here, while the inputs are still paused:
            the queues are emptied (what they hold was read before this generation's seek
            and comes again), the resume that follows leaves them alone, and every input
            partition goes back to its committed offset, or to its first record if it has
            none."""
            generation = app.consumer_generation_id
            faust_patches.keep_queues_at_next_resume(
                app.flow_control, lambda: app.consumer_generation_id == generation)
            await self._seek_inputs_to_committed()
            self.settled_generation = generation
            self.health.restart_clocks()

        app.on_rebalance_complete.connect(on_settled)  # type: ignore[arg-type]
        self.churn.register(self)
        self.population.register(self)

        @app.task
        async def follow_leaderboards() -> None:
            await self.leaderboards.run()

        from streams.web import register_views

        register_views(self)

    async def _seek_inputs_to_committed(self) -> None:
        """Every partition back to its committed offset; an input partition never committed
        back to its first record. Faust's seek (aiokafka's) moves only partitions committed
        above offset 0, so one that kept its owner through a rebalance before its first
        commit stayed where the consumer was: the records fetched before the rebalance and
        left unscored (fetched in an old generation) never came again."""
        from aiokafka import TopicPartition

        consumer = self.app.consumer
        timeout = self.app.conf.broker_request_timeout
        try:
            await asyncio.wait_for(consumer.perform_seek(), timeout)
            read_offset = consumer._read_offset  # type: ignore[attr-defined]
            never_committed = [
                TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment()
                if tp.topic in self.names.scoring_inputs and not read_offset.get(tp)
            ]
            log.info("input partitions back to their committed offsets; to their first "
                     "records (never committed): %s",
                     sorted(f"{tp.topic}[{tp.partition}]" for tp in never_committed))
            if never_committed:
                thread = consumer._thread  # type: ignore[attr-defined]
                await asyncio.wait_for(thread.seek_to_beginning(*never_committed), timeout)
        except Exception as exc:  # Faust seeks again after resuming; say it may be late
            log.warning("seeking input partitions to their committed offsets before they "
                        "resume failed: %r", exc)

    async def _refresh_ends(self) -> None:
        assigned = sorted(self.health.assigned)
        if not assigned:
            return
        try:
            ends = await asyncio.wait_for(self.app.consumer.highwaters(*assigned), 5.0)
        except Exception as exc:  # the broker away: judged on the last figures
            self.health.ends_failures += 1
            if self.health.ends_failures % 12 == 1:  # once a minute: stalls go unseen meanwhile
                log.warning("end offsets of %d input partitions unavailable (%d times in a "
                            "row): %r", len(assigned), self.health.ends_failures, exc)
            return
        self.health.ends_failures = 0
        self.health.ends = {TP(tp.topic, tp.partition): int(end) for tp, end in ends.items()}
        committed = getattr(self.app.consumer, "_committed_offset", {})  # Faust's own record
        self.health.committed = {tp: int(committed[tp]) for tp in assigned
                                 if committed.get(tp) is not None}

    def serves(self, partition: int) -> bool:
        """This worker holds `partition` and has taken it over: the assignment settled and
        its table recovered (until then a user's state here may be missing or old)."""
        return partition in self.held and self._assignment_settled()

    def _assignment_settled(self) -> bool:
        """No rebalance under way, and the current assignment's table recovery is over."""
        app = self.app
        return not app.rebalancing and self.settled_generation == app.consumer_generation_id

    def _recovered(self) -> bool:
        recovery = getattr(self.app.tables, "recovery", None)
        return recovery is not None and bool(recovery.completed.is_set())

    def _stalled(self) -> dict[TP, int]:
        return self.health.stalled(self.settings.stall_after_s) if self._recovered() else {}

    def _report_stalls(self) -> None:
        """Log each input partition that stalled, once per stall, with what Faust and aiokafka
        hold for it (the metric and /readyz carry it meanwhile). Nothing here restarts it:
        rejoining the group was tried, and did not bring back a partition whose records
        aiokafka had handed over and Faust never delivered (see docs/guarantees.md)."""
        stalled = self._stalled()
        self.metrics.input_stalled.set(len(stalled))
        for tp in sorted(set(stalled) - self.health.reported):
            log.warning("input %s[%d] stalled: %d records waiting, none read for %.0f s; "
                        "consumer state: %s", tp.topic, tp.partition, stalled[tp],
                        self.settings.stall_after_s, describe_partition(self.app, tp))
        self.health.reported = set(stalled)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready: tables recovered, partitions assigned, outputs flowing, no stalled input."""
        recovered = self._recovered()
        stalled_for = (
            time.monotonic() - self.outbox.stalled_since
            if self.outbox.stalled_since is not None else 0.0
        )
        behind = self.health.behind() if recovered else {}
        idle_for = time.monotonic() - self.health.last_batch
        stuck = bool(behind) and idle_for > self.settings.stall_after_s
        stalled = self._stalled()
        checks = {
            "tables_recovered": recovered,
            "partitions_assigned": sorted(f"{tp.topic}[{tp.partition}]"
                                          for tp in self.health.assigned),
            "outputs_stalled_seconds": round(stalled_for, 1),
            "last_output_error": self.outbox.last_error if stalled_for else None,
            "seconds_since_last_batch": round(idle_for, 1),
            "records_waiting": sum(behind.values()),
            "stalled_partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled),
            "fatal": self.health.fatal,
        }
        ready = (
            recovered and bool(self.health.assigned) and not self.health.fatal
            and stalled_for < self.settings.stall_after_s and not stuck and not stalled
        )
        return ready, checks


class Health:
    """What /readyz judges: the last batch's time, and how far and when each input partition
    was last read (a partition with records waiting that does not move is stalled)."""

    def __init__(self) -> None:
        self.last_batch = time.monotonic()
        self.read_up_to: dict[TP, int] = {}
        self.moved_at: dict[TP, float] = {}  # when a partition was assigned or last moved
        self.assigned: set[TP] = set()
        # the broker's end offsets, asked for every few seconds: the consumer's own figure
        # exists only for partitions it has fetched from, and a stall may be one it never did
        self.ends: dict[TP, int] = {}
        self.committed: dict[TP, int] = {}  # committed offsets (the next record to read)
        self.reported: set[TP] = set()  # stalls already logged
        self.ends_failures = 0  # end-offset requests failed in a row
        self.fatal: str | None = None

    def assign(self, assigned: set[TP]) -> None:
        self.assigned = assigned
        self.restart_clocks()

    def restart_clocks(self) -> None:
        """An assignment or a finished recovery: every partition's wait counts from now (a
        long rebalance is not a stall)."""
        now = time.monotonic()
        for tp in self.assigned:
            self.moved_at[tp] = now

    def batch_done(self, records: list[InputRecord]) -> None:
        now = self.last_batch = time.monotonic()
        for r in records:
            tp = TP(r.topic, r.partition)
            self.read_up_to[tp] = r.offset
            self.moved_at[tp] = now

    def behind(self) -> dict[TP, int]:
        """Records waiting on assigned partitions (the broker's end beyond what was done)."""
        out: dict[TP, int] = {}
        for tp in self.assigned:
            end = self.ends.get(tp)
            if end is None:
                continue
            done = self.read_up_to.get(tp)
            # nothing read here yet: what an earlier owner committed is done
            start = done + 1 if done is not None else self.committed.get(tp, 0)
            waiting = end - start
            if waiting > 0:
                out[tp] = waiting
        return out

    def stalled(self, after_s: float) -> dict[TP, int]:
        """Partitions with records waiting that have not moved for `after_s` seconds."""
        now = time.monotonic()
        return {tp: n for tp, n in self.behind().items()
                if now - self.moved_at.get(tp, now) > after_s}


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    if not raw:
        return []
    items = raw.items() if isinstance(raw, Mapping) else raw
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _ensure_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
