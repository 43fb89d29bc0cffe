"""Every topic the system reads or writes, with explicit partitions and configurations.

Topics are created here, with kafka-python's admin client, before the worker starts: never by
broker auto-creation (the local broker has it switched off). Topics read by the scoring agent
are co-partitioned with the input topic, so each user's events, ticks and re-keyed events meet
on one partition and one table shard.

Replication factor, `min.insync.replicas`, retention and the partitions of topics that are
free to differ come from a TopicPolicy (a TOML file, `--topics-config`), so one topology runs
on a laptop (replication 1) and on a cluster (replication 3, min ISR 2).
"""

from __future__ import annotations

import contextlib
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from scoring.triggers.registry import trigger_types as registered_types

TOPICS_VISIBLE_WAIT_S = 30.0

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
    def scoring_inputs(self) -> tuple[str, ...]:
        """What the scoring agent reads: partitioned alike, a user on one partition in all."""
        return (self.interactions, self.rekeyed, self.ticks, self.routed)

    @property
    def scores(self) -> str:
        return self._n("engagement.scores")

    @property
    def sketches(self) -> str:
        return self._n("engagement.sketches")

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
    replication_factor: int = 1


COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000"}

Count = Annotated[int, msgspec.Meta(ge=1)]


class TopicPolicyError(ValueError):
    """A topics config that names an unknown topic or asks for an unsafe layout."""


class TopicOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings for one topic, by its name without the prefix (`engagement.dlq`)."""

    partitions: Count | None = None
    replication_factor: Count | None = None
    min_insync_replicas: Count | None = None
    retention_ms: Annotated[int, msgspec.Meta(ge=-1)] | None = None
    config: dict[str, str] = msgspec.field(default_factory=dict)  # any other topic config


class TopicPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Cluster-wide defaults and per-topic overrides for the topics engage creates.

    The worker's own internal topics (the users table's changelog, Faust's leader topic) take
    the default replication factor and min ISR too.
    """

    replication_factor: Count = 1
    min_insync_replicas: Count = 1
    topics: dict[str, TopicOverride] = msgspec.field(default_factory=dict)

    def with_defaults(
        self, replication_factor: int | None, min_insync_replicas: int | None
    ) -> TopicPolicy:
        """This policy with its defaults replaced where flags or the environment set them."""
        return msgspec.structs.replace(
            self,
            replication_factor=replication_factor or self.replication_factor,
            min_insync_replicas=min_insync_replicas or self.min_insync_replicas,
        )

    def internal_topic_config(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync_replicas)}


def load_topic_policy(path: str | Path | None) -> TopicPolicy:
    """A TopicPolicy from a TOML file (None: the laptop defaults)."""
    if path is None:
        return TopicPolicy()
    try:
        raw: dict[str, Any] = tomllib.loads(Path(path).read_text())
        return msgspec.convert(raw, TopicPolicy)
    except FileNotFoundError:
        raise TopicPolicyError(f"topics config not found: {path}") from None
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise TopicPolicyError(f"topics config {path}: {exc}") from None


# Topics whose partition count is part of the design: co-partitioned with the input (their
# count follows --partitions), or read as a single partition by the churn trainer and readers.
FIXED_PARTITIONS = ("interactions", "engagement.rekeyed", "engagement.ticks", "churn.examples",
                    "churn.models", "churn.control", "churn.status")


def _base_specs(
    names: TopicNames, partitions: int, trigger_types: Iterable[str] | None
) -> list[TopicSpec]:
    week = str(7 * DAY_MS)
    specs = [
        TopicSpec(names.interactions, partitions, {"retention.ms": week}),
        TopicSpec(names.rekeyed, partitions, {"retention.ms": week}),
        TopicSpec(names.ticks, partitions, {"retention.ms": str(3_600_000)}),
        TopicSpec(names.routed, partitions, {"retention.ms": week}),
        TopicSpec(names.scores, partitions, dict(COMPACTED)),
        # Every partition's population snapshots, keyed "<partition>/<day>", read whole by
        # every worker (one partition); republished copies compacted away, old days deleted.
        TopicSpec(names.sketches, 1, {**COMPACTED, "cleanup.policy": "compact,delete",
                                      "retention.ms": str(35 * DAY_MS)}),
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


def topic_specs(
    names: TopicNames,
    partitions: int,
    trigger_types: Iterable[str] | None = None,
    policy: TopicPolicy | None = None,
) -> list[TopicSpec]:
    """The full topology. `partitions` applies to the input and everything co-partitioned;
    one topic per trigger type the config runs (default: the built-in types); `policy` sets
    replication, min ISR, retention and the partitions of free topics."""
    policy = policy or TopicPolicy()
    base = _base_specs(names, partitions, trigger_types)
    logical = {spec.name: spec.name[len(names.prefix):] for spec in base}
    logical[names.interactions] = "interactions"  # whatever --input-topic calls it
    unknown = sorted(set(policy.topics) - set(logical.values()))
    if unknown:
        raise TopicPolicyError(
            f"topics config names unknown topics {unknown}; known: {sorted(logical.values())}"
        )
    specs = []
    for spec in base:
        name = logical[spec.name]
        override = policy.topics.get(name, TopicOverride())
        if override.partitions is not None and name in FIXED_PARTITIONS:
            raise TopicPolicyError(
                f"the partitions of {name!r} are fixed by the design (co-partitioned with the "
                "input, or one partition for the churn trainer); set --partitions instead"
            )
        if override.config.get("cleanup.policy", spec.config.get("cleanup.policy")) != (
            spec.config.get("cleanup.policy")
        ):
            raise TopicPolicyError(f"the cleanup.policy of {name!r} cannot be changed")
        replication = override.replication_factor or policy.replication_factor
        min_isr = override.min_insync_replicas or policy.min_insync_replicas
        if min_isr > replication:
            raise TopicPolicyError(
                f"{name!r}: min_insync_replicas {min_isr} exceeds replication_factor "
                f"{replication}: no write could ever be acknowledged"
            )
        config = {**spec.config, "min.insync.replicas": str(min_isr), **override.config}
        if override.retention_ms is not None:
            config["retention.ms"] = str(override.retention_ms)
        specs.append(TopicSpec(spec.name, override.partitions or spec.partitions, config,
                               replication))
    return specs


class TopologyError(RuntimeError):
    """Existing topics do not match what the worker needs."""


def ensure_topics(
    bootstrap: str,
    names: TopicNames,
    partitions: int,
    trigger_types: Iterable[str] | None = None,
    policy: TopicPolicy | None = None,
    client: dict[str, Any] | None = None,
) -> int:
    """Create missing topics; return the input topic's partition count actually in use.

    When the input topic already exists its partition count wins, and every co-partitioned
    topic must have the same count (the worker refuses to start otherwise). Existing topics
    are left as they are (a platform team may declare them itself, e.g. as Strimzi
    KafkaTopics). `client`: security settings for kafka-python (KafkaSecurity).
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="engage-topics",
                             **(client or {}))
    try:
        existing = _partition_counts(admin)
        if names.interactions in existing:
            partitions = existing[names.interactions]
        wanted = topic_specs(names, partitions, trigger_types, policy)
        missing = [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config)
            for s in wanted
            if s.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent worker won
                admin.create_topics(missing, timeout_ms=30_000)
        counts = _visible_counts(admin, names.scoring_inputs)
        wrong = {n: counts.get(n) for n in names.scoring_inputs if counts.get(n) != partitions}
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
    """Partitions per topic; a topic listed without partitions (metadata read while the
    broker is fenced, or a topic just created) is left out: every topic has at least one."""
    counts: dict[str, int] = {}
    for meta in admin.describe_topics():
        if meta.get("error_code", 0) == 0 and meta["partitions"]:
            counts[meta.get("name") or meta["topic"]] = len(meta["partitions"])
    return counts


def _visible_counts(admin: KafkaAdminClient, topics: Iterable[str]) -> dict[str, int]:
    """Partition counts once every one of `topics` shows in the metadata (bounded wait): a
    topic just created can take a moment to appear, longer on a loaded broker."""
    deadline = time.monotonic() + TOPICS_VISIBLE_WAIT_S
    counts = _partition_counts(admin)
    while any(t not in counts for t in topics) and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = _partition_counts(admin)
    return counts


def delete_topics(
    bootstrap: str, topics: list[str], client: dict[str, Any] | None = None
) -> None:
    """Test helper: drop topics (missing ones are ignored)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="engage-topics",
                             **(client or {}))
    try:
        present = set(admin.list_topics())
        doomed = [t for t in topics if t in present]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        admin.close()
