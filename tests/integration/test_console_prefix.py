"""Through the real broker: with no prefix given, `engage watch` and `engage model` read a
running demo's topics (`demo.`) when the unprefixed ones do not exist."""

from __future__ import annotations

import pytest

from streams.topic_prefix import DEMO_PREFIX, resolve_prefix
from streams.topics import TopicNames, ensure_topics

pytestmark = pytest.mark.kafka


def test_the_demo_prefix_is_found(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGAGE_TOPIC_PREFIX", raising=False)
    ensure_topics(kafka_bootstrap, TopicNames(prefix=DEMO_PREFIX), 1)
    assert resolve_prefix(kafka_bootstrap, None, lambda n: n.audit) == DEMO_PREFIX
    assert resolve_prefix(kafka_bootstrap, None, lambda n: n.churn_control) == DEMO_PREFIX
    assert resolve_prefix(kafka_bootstrap, "", lambda n: n.audit) == ""
