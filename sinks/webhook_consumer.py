"""The webhook sink's runtime: consume trigger topics, drive the sink, commit what it finished.

Why it never leaves its consumer group on a slow endpoint: deliveries run in the background,
and this loop calls `getmany` at least every `poll_timeout_ms` whatever the endpoint does, so
the consumer's poll interval and heartbeats hold. A partition whose backlog (records consumed
and not yet committable) reaches `max_pending` is paused, not waited on, and resumed when its
backlog has halved. Offsets are committed per partition up to the first unfinished record.

At-least-once: an offset is committed only after its record, and every earlier record of its
partition, was delivered, dead-lettered or skipped. Records in flight when partitions are
revoked or the sink stops (after a grace period) are delivered again by the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from sinks.webhook import Partition, SinkStats, TriggerRecord, WebhookSink
from sinks.webhook_delivery import RetryPolicy, WebhookDelivery
from sinks.webhook_metrics import WebhookMetrics
from sinks.webhook_signing import Signer
from sinks.webhook_topics import DEFAULT_DLQ_TOPIC, DEFAULT_GROUP_ID, trigger_topics

log = logging.getLogger("engage.webhook")


class TopicMissing(RuntimeError):
    """A topic the sink needs does not exist (topics are never auto-created)."""


@dataclass(frozen=True)
class WebhookSettings:
    """Everything `engage webhook` is told: where from, where to, and how hard to push."""

    url: str
    secret: bytes = field(repr=False)
    broker: str = "127.0.0.1:9092"
    types: tuple[str, ...] = ()  # empty: every trigger type
    topic_prefix: str = ""
    group_id: str = DEFAULT_GROUP_ID
    dlq_topic: str = DEFAULT_DLQ_TOPIC  # after the prefix
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 8  # deliveries in flight per partition
    max_pending: int = 1000  # backlog per partition before it is paused
    max_connections: int = 64  # pooled HTTP connections, all partitions together
    standard_webhooks: bool = False
    deliver_expired: bool = False
    poll_timeout_ms: int = 200
    kafka_client: dict[str, Any] = field(default_factory=dict)  # security (kafka_security)
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    commit_interval_s: float = 1.0
    revoke_grace_s: float = 5.0  # wait this long for in-flight deliveries of revoked partitions
    shutdown_grace_s: float = 30.0
    auto_offset_reset: str = "earliest"

    @property
    def topics(self) -> list[str]:
        return trigger_topics(self.types, self.topic_prefix)

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}{self.dlq_topic}"


@dataclass
class RunReport:
    """What one run did: the sink's counts and what happened to its group membership."""

    sink: SinkStats
    assignments: int = 0  # rebalances that gave this member partitions
    revocations: int = 0  # rebalances that took partitions away
    commit_failures: int = 0
    ever_paused: set[Partition] = field(default_factory=set)  # backlog was full at some point


async def run_webhook_sink(
    settings: WebhookSettings,
    *,
    metrics: WebhookMetrics | None = None,
    stop: asyncio.Event | None = None,
    stop_after: int | None = None,
    idle_timeout_s: float | None = None,
) -> RunReport:
    """Consume, deliver and commit until `stop` is set, `stop_after` records are finished and
    committed, or nothing arrived and nothing was pending for `idle_timeout_s` seconds.

    Raises `TopicMissing` when the dead-letter topic does not exist, and `SinkFailed` when a
    record could neither be delivered nor dead-lettered (its offset stays uncommitted).
    """
    metrics = metrics or WebhookMetrics()
    topics = settings.topics
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker, acks="all", linger_ms=0, **settings.kafka_client
    )
    try:
        await producer.start()
        await _check_topics(producer, settings.dead_letter_topic, topics)

        async def publish_dead_letter(key: bytes | None, value: bytes) -> None:
            await producer.send_and_wait(settings.dead_letter_topic, value=value, key=key)

        signer = Signer(settings.secret, standard_webhooks=settings.standard_webhooks)
        async with WebhookDelivery(
            settings.url, signer, settings.retry, max_connections=settings.max_connections,
            metrics=metrics,
        ) as delivery:
            sink = WebhookSink(
                delivery, publish_dead_letter, concurrency=settings.concurrency,
                deliver_expired=settings.deliver_expired, metrics=metrics,
            )
            consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.broker,
                group_id=settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset=settings.auto_offset_reset,
                max_poll_interval_ms=settings.max_poll_interval_ms,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.heartbeat_interval_ms,
                **settings.kafka_client,
            )
            runtime = _Runtime(consumer, sink, settings, metrics)
            log.info(
                "webhook sink: %s -> %s (dead letters to %s)",
                ", ".join(topics), delivery.public_url, settings.dead_letter_topic,
            )
            consumer.subscribe(topics, listener=runtime)
            try:
                await consumer.start()
                await runtime.loop(stop, stop_after, idle_timeout_s)
            finally:
                await runtime.drain()
                await consumer.stop()
            return runtime.report
    finally:
        await producer.stop()


async def _check_topics(producer: AIOKafkaProducer, dead_letter_topic: str,
                        sources: list[str]) -> None:
    cluster = await producer.client.fetch_all_metadata()
    existing = cluster.topics()
    if dead_letter_topic not in existing:
        raise TopicMissing(
            f"dead-letter topic {dead_letter_topic!r} does not exist "
            "(create the topics first: engage topics)"
        )
    missing = [t for t in sources if t not in existing]
    if missing:
        log.warning("trigger topics not there yet: %s", ", ".join(missing))


class _Runtime(ConsumerRebalanceListener):  # type: ignore[misc]
    """The loop, the commits and the rebalance callbacks of one consumer driving one sink."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        sink: WebhookSink,
        settings: WebhookSettings,
        metrics: WebhookMetrics,
    ) -> None:
        self._consumer = consumer
        self._sink = sink
        self._settings = settings
        self._metrics = metrics
        self._committed: dict[TopicPartition, int] = {}
        self._commit_lock = asyncio.Lock()
        self.report = RunReport(sink.stats)

    async def loop(
        self, stop: asyncio.Event | None, stop_after: int | None, idle_timeout_s: float | None
    ) -> None:
        settings, sink = self._settings, self._sink
        last_record = last_commit = time.monotonic()
        while not (stop is not None and stop.is_set()):
            batches = await self._consumer.getmany(timeout_ms=settings.poll_timeout_ms)
            assigned = self._consumer.assignment()
            for tp, records in batches.items():
                if tp not in assigned:
                    continue  # revoked while the fetch was under way: the next owner reads it
                for r in records:
                    sink.add(TriggerRecord(r.topic, r.partition, r.offset, r.key, r.value))
            now = time.monotonic()
            if batches:
                last_record = now
            sink.raise_if_failed()
            self._apply_backpressure(assigned)
            if now - last_commit >= settings.commit_interval_s:
                await self.commit()
                last_commit = now
            if stop_after is not None and sink.stats.finished >= stop_after:
                break
            if (idle_timeout_s is not None and sink.pending() == 0
                    and now - last_record > idle_timeout_s):
                log.info("webhook sink idle for %.1fs; stopping", idle_timeout_s)
                break

    def _apply_backpressure(self, assigned: set[TopicPartition]) -> None:
        """Pause a partition whose backlog is full; resume it once the backlog has halved."""
        limit = self._settings.max_pending
        paused = self._consumer.paused()
        for tp in assigned:
            backlog = self._sink.backlog((tp.topic, tp.partition))
            if tp not in paused and backlog >= limit:
                self._consumer.pause(tp)
                self.report.ever_paused.add((tp.topic, tp.partition))
            elif tp in paused and backlog <= limit // 2:
                self._consumer.resume(tp)
        self._metrics.paused_partitions.set(len(self._consumer.paused()))
        self._metrics.pending.set(self._sink.pending())

    async def commit(self, only: Iterable[Partition] | None = None) -> None:
        """Commit each assigned partition's finished prefix that moved since the last commit."""
        async with self._commit_lock:
            assigned = self._consumer.assignment()
            chosen = None if only is None else {TopicPartition(t, p) for t, p in only}
            offsets = {
                tp: offset
                for (topic, partition), offset in self._sink.committable().items()
                if (tp := TopicPartition(topic, partition)) in assigned
                and (chosen is None or tp in chosen)
                and self._committed.get(tp) != offset
            }
            if offsets:
                try:
                    await self._consumer.commit(offsets)
                except KafkaError as exc:  # e.g. a rebalance: records come again, receivers dedupe
                    self.report.commit_failures += 1
                    self._metrics.commits.labels(result="failed").inc()
                    log.warning("offset commit failed (%s); records may be delivered again", exc)
                else:
                    self._committed.update(offsets)
                    self._metrics.commits.labels(result="ok").inc()
            for tp in assigned:
                highwater, committed = self._consumer.highwater(tp), self._committed.get(tp)
                if highwater is not None and committed is not None:
                    self._metrics.lag.labels(tp.topic, str(tp.partition)).set(highwater - committed)

    async def drain(self) -> None:
        """On stop: let deliveries finish (within the grace period), commit, cancel the rest."""
        finished = await self._sink.flush(timeout=self._settings.shutdown_grace_s)
        if not finished:
            log.warning("stopping with deliveries still in flight; they will be delivered again")
        await self.commit()
        await self._sink.release()

    # ------------------------------------------------------------ ConsumerRebalanceListener

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return  # the first join revokes nothing
        self.report.revocations += 1
        self._metrics.rebalances.labels(event="revoked").inc()
        partitions = [(tp.topic, tp.partition) for tp in revoked]
        await self._sink.flush(partitions, timeout=self._settings.revoke_grace_s)
        await self.commit(partitions)
        await self._sink.release(partitions)
        for tp in revoked:
            self._committed.pop(tp, None)
            with contextlib.suppress(KeyError):  # never committed here: no lag series
                self._metrics.lag.remove(tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.report.assignments += 1
        self._metrics.rebalances.labels(event="assigned").inc()
        log.info("webhook sink assigned %s", sorted(f"{tp.topic}[{tp.partition}]"
                                                    for tp in assigned))
