"""Through the real broker: a trigger type added by a test-only plug-in (one file,
tests/plugins/night_owl.py, named in the rules file) fires through the worker onto its own
topic, exactly as `engage replay` fires it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.worker_process import (
    produce,
    read_topic,
    read_until_counted,
    replayed_history,
    running_worker,
    unique_names,
)

pytestmark = pytest.mark.kafka

RULES = """
[triggers]
plugins = ["tests.plugins.night_owl"]
daily_cap = 100

[triggers.night_owl]
until_hour = 6
"""


def test_a_plugin_trigger_type_fires_through_replay_and_the_worker(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = unique_names()
    history = replayed_history(tmp_path, RULES, users=30, days=10, seed=3, partitions=2)
    events, rules = history.events, history.rules
    expected = {t["trigger_id"] for t in history.triggers if t["type"] == "night_owl"}
    assert len(expected) >= 5

    with running_worker(kafka_bootstrap, names, tmp_path, "--idle-advance-seconds", "1000000",
                        config=rules):
        produce(kafka_bootstrap, names.interactions,
                [(e["user_id"].encode(), json.dumps(e).encode()) for e in events])
        read_until_counted(kafka_bootstrap, names, dict(Counter(e["user_id"] for e in events)))
        owls = read_topic(kafka_bootstrap, names.trigger("night_owl"),
                          lambda rs: {t["trigger_id"] for t in rs} >= expected, timeout_s=60)
    assert {t["trigger_id"] for t in owls} == expected
    assert {t["type"] for t in owls} == {"night_owl"}
