"""Which topics the webhook sink reads and writes (kept light: the CLI imports it to build
its parser, before anything of the sink's runtime is loaded)."""

from __future__ import annotations

from collections.abc import Iterable

from scoring.triggers.registry import trigger_types  # the registry owns the list

DEFAULT_DLQ_TOPIC = "triggers.webhook.dlq"
DEFAULT_GROUP_ID = "engage-webhook"


def trigger_topics(types: Iterable[str] | None, topic_prefix: str = "") -> list[str]:
    """`<prefix>triggers.<type>` for each chosen type (all when `types` is None or empty)."""
    known = trigger_types()
    chosen = list(types) if types else list(known)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"unknown trigger types: {', '.join(unknown)}")
    return [f"{topic_prefix}triggers.{t}" for t in chosen]
