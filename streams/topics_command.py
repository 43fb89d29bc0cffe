"""`engage topics`: create every topic with its partitions, replication and configs.

The topology options (prefix, input topic, partitions, replication) are shared with
`engage worker`, which creates missing topics the same way before it starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from sinks.argtypes import positive_int
from streams import kafka_security
from streams.env_args import env_option
from streams.topics import TopicNames, TopicPolicy, ensure_topics, load_topic_policy


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def add_topology_arguments(p: argparse.ArgumentParser) -> None:
    env_option(p, "--partitions", env="ENGAGE_PARTITIONS", default="4", type=positive_int,
               help="partitions for new topics (an existing input topic's count wins)")
    env_option(p, "--input-topic", env="ENGAGE_INPUT_TOPIC", default="interactions",
               help="the input topic's name, after the prefix")
    env_option(p, "--topic-prefix", env="ENGAGE_TOPIC_PREFIX", default="",
               help="prefix for every topic name (tenants, tests)")
    env_option(p, "--topics-config", env="ENGAGE_TOPICS_CONFIG", default=None, metavar="FILE",
               help="TOML: replication_factor, min_insync_replicas and [topics.<name>] "
               "overrides (partitions, retention_ms, config)")
    env_option(p, "--replication-factor", env="ENGAGE_REPLICATION_FACTOR", default=None,
               type=positive_int, help="replication factor of every topic engage creates "
               "(over the topics config; else 1)")
    env_option(p, "--min-insync-replicas", env="ENGAGE_MIN_INSYNC_REPLICAS", default=None,
               type=positive_int, help="min.insync.replicas of those topics (else 1)")


def names_from_args(args: argparse.Namespace) -> TopicNames:
    return TopicNames(prefix=args.topic_prefix, input=args.input_topic)


def policy_from_args(
    args: argparse.Namespace, trigger_types: Iterable[str] | None = None
) -> TopicPolicy:
    """The topics config file with the replication flags over it (TopicPolicyError if bad)."""
    policy = load_topic_policy(args.topics_config).with_defaults(
        args.replication_factor, args.min_insync_replicas
    )
    names = names_from_args(args)
    from streams.topics import topic_specs

    # refuse an unsafe policy before any work
    topic_specs(names, args.partitions, trigger_types, policy=policy)
    return policy


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_topology_arguments(p)


def run(args: argparse.Namespace) -> int:
    connection = kafka_security.connection_from_args(args)
    partitions = ensure_topics(
        connection.bootstrap, names_from_args(args), args.partitions,
        policy=policy_from_args(args), client=connection.security.client_settings(),
    )
    print(f"topics ready on {connection.bootstrap} ({partitions} input partitions)")
    return 0
