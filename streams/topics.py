"""Every topic the system reads or writes, with explicit partitions and configurations.

Topics are created here, with kafka-python's admin client, before the worker starts: never by
broker auto-creation (the local broker has it switched off). Topics read by the scoring agent
are co-partitioned with the input topic, so each user's events, ticks and re-keyed events meet
on one partition and one table shard.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from scoring.triggers.registry import trigger_types as registered_types

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicNames:
    """Topic names: the public contract, all behind an optional prefix (tests, tenants)."""

    prefix: str = ""
    input: str = "interactions"

    def _n(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def interactions(self) -> str:
        return self._n(self.input)

    @property
    def rekeyed(self) -> str:
        return self._n("engagement.rekeyed")

    @property
    def leaderboards(self) -> str:
        return self._n("engagement.leaderboards")

    @property
    def routed(self) -> str:
        return self._n("engagement.routed")

    @property
    def ticks(self) -> str:
        return self._n("engagement.ticks")

    @property
    def scores(self) -> str:
        return self._n("engagement.scores")

    @property
    def dlq(self) -> str:
        return self._n("engagement.dlq")

    @property
    def audit(self) -> str:
        return self._n("triggers.audit")

    @property
    def webhook_dlq(self) -> str:
        return self._n("triggers.webhook.dlq")

    @property
    def churn_examples(self) -> str:
        return self._n("churn.examples")

    @property
    def churn_models(self) -> str:
        return self._n("churn.models")

    @property
    def churn_control(self) -> str:
        return self._n("churn.control")

    @property
    def churn_status(self) -> str:
        return self._n("churn.status")

    def trigger(self, trigger_type: str) -> str:
        return self._n(f"triggers.{trigger_type}")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000"}


def topic_specs(
    names: TopicNames, partitions: int, trigger_types: Iterable[str] | None = None
) -> list[TopicSpec]:
    """The full topology. `partitions` applies to the input and everything co-partitioned;
    one topic per trigger type the config runs (default: the built-in types)."""
    week = str(7 * DAY_MS)
    specs = [
        TopicSpec(names.interactions, partitions, {"retention.ms": week}),
        TopicSpec(names.rekeyed, partitions, {"retention.ms": week}),
        TopicSpec(names.ticks, partitions, {"retention.ms": str(3_600_000)}),
        TopicSpec(names.routed, partitions, {"retention.ms": week}),
        TopicSpec(names.scores, partitions, dict(COMPACTED)),
        TopicSpec(names.dlq, 1, {"retention.ms": str(14 * DAY_MS)}),
        TopicSpec(names.audit, partitions, {"retention.ms": str(30 * DAY_MS)}),
        TopicSpec(names.webhook_dlq, 1, {"retention.ms": str(14 * DAY_MS)}),
        # One partition: a single trainer sees every example, in order.
        TopicSpec(names.churn_examples, 1, {"retention.ms": week}),
        TopicSpec(names.churn_models, 1, dict(COMPACTED)),
        # one record per input partition (its top users by period), read by every worker
        TopicSpec(names.leaderboards, 1, dict(COMPACTED)),
        TopicSpec(names.churn_control, 1, {"retention.ms": week}),
        TopicSpec(names.churn_status, 1, dict(COMPACTED)),
    ]
    specs += [
        TopicSpec(names.trigger(t), partitions, {"retention.ms": week})
        for t in (registered_types() if trigger_types is None else trigger_types)
    ]
    return specs


class TopologyError(RuntimeError):
    """Existing topics do not match what the worker needs."""


def ensure_topics(
    bootstrap: str,
    names: TopicNames,
    partitions: int,
    trigger_types: Iterable[str] | None = None,
) -> int:
    """Create missing topics; return the input topic's partition count actually in use.

    When the input topic already exists its partition count wins, and every co-partitioned
    topic must have the same count (the worker refuses to start otherwise).
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="engage-topics")
    try:
        existing = _partition_counts(admin)
        if names.interactions in existing:
            partitions = existing[names.interactions]
        wanted = topic_specs(names, partitions, trigger_types)
        missing = [
            NewTopic(s.name, s.partitions, 1, topic_configs=s.config)
            for s in wanted
            if s.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent worker won
                admin.create_topics(missing, timeout_ms=30_000)
        counts = _partition_counts(admin)
        copartitioned = (names.interactions, names.rekeyed, names.ticks, names.routed)
        wrong = {n: counts.get(n) for n in copartitioned if counts.get(n) != partitions}
        if wrong:
            raise TopologyError(
                f"topics {wrong} must have {partitions} partitions like {names.interactions!r}"
            )
        return partitions
    finally:
        admin.close()


def input_partitions(bootstrap: str, names: TopicNames) -> int | None:
    """The live input topic's partition count (None when it does not exist)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="engage-topics")
    try:
        return _partition_counts(admin).get(names.interactions)
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient) -> dict[str, int]:
    counts: dict[str, int] = {}
    for meta in admin.describe_topics():
        if meta.get("error_code", 0) == 0:
            counts[meta.get("name") or meta["topic"]] = len(meta["partitions"])
    return counts


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Test helper: drop topics (missing ones are ignored)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="engage-topics")
    try:
        present = set(admin.list_topics())
        doomed = [t for t in topics if t in present]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        admin.close()
