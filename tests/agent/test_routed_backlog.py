"""The worker's logic against `engage replay`, with what Kafka does to a backlog: partitions
processed in batches, in an interleaving no one chooses, and messages between users'
partitions (referral steps) arriving batches after the events that sent them. Every
trigger of a user's own history is the same as replay's. Referral decisions wait for news
from other partitions, so when they are made depends on delivery; what they decide must
hold anyway: each invitee credited at most once, and never for a flagged referral."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest

from scoring.config import load_config
from scoring.partitioning import partition_for_user
from simulator import generate
from sinks.metrics import Metrics
from streams.engine_factory import build_engine
from streams.processor import DictStore, InputRecord, ScoringShell
from streams.replay import run_replay
from streams.topics import TopicNames

PARTITIONS = 4
RULES = "[triggers.reengagement_nudge]\nchurn_probability_above = 1.0\n"


@pytest.mark.parametrize("seed", [1, 2])
def test_batches_and_late_messages_give_replay_s_triggers(tmp_path: Path, seed: int) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    config = load_config(rules)
    events = list(generate(users=150, days=21, seed=5)[0])
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    reference = tmp_path / "replay.jsonl"
    run_replay(source, config, triggers_path=reference, progress=False, partitions=PARTITIONS,
               churn=False)
    want = {(t["type"], t["user_id"], t["episode"])
            for line in reference.read_text().splitlines() if (t := json.loads(line))}
    assert sum(1 for t in want if t[0].startswith("referral_")) >= 3

    names, metrics = TopicNames(), Metrics()
    engine = build_engine(config, churn=None, on_suppressed=metrics.count_suppressed)
    shell = ScoringShell(config, engine, DictStore(PARTITIONS), names, PARTITIONS, metrics,
                         idle_advance_ms=10**12)
    queues: dict[tuple[str, int], list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = (
        defaultdict(list))
    for e in events:
        p = partition_for_user(e["user_id"], PARTITIONS)
        queues[(names.interactions, p)].append((e["user_id"].encode(), json.dumps(e).encode(),
                                                []))
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    got: set[tuple[str, str, str]] = set()
    rng = random.Random(seed)

    def batch(topic: str, p: int, n: int) -> None:
        taken, queues[(topic, p)] = queues[(topic, p)][:n], queues[(topic, p)][n:]
        records = []
        for key, value, headers in taken:
            records.append(InputRecord(topic, p, offsets[(topic, p)], key, value, headers))
            offsets[(topic, p)] += 1
        if not records:
            return
        result = shell.handle_batch(records)
        shell.store_batch(result)
        for out in result.outbox:
            if out.topic == names.routed:
                assert out.partition is not None and out.key is not None
                queues[(names.routed, out.partition)].append(
                    (out.key, out.value, list(out.headers or [])))
            elif out.topic == names.audit:
                t = json.loads(out.value)
                if t.get("schema") == "trigger/v1":
                    got.add((t["type"], t["user_id"], t["episode"]))

    while any(queues.values()):
        batch(names.interactions, rng.randrange(PARTITIONS), rng.choice([50, 300, 2000]))
        batch(names.routed, rng.randrange(PARTITIONS), rng.choice([5, 50]))
    own = {t for t in got if not t[0].startswith("referral_")}
    assert own == {t for t in want if not t[0].startswith("referral_")}
    credited = [t[2] for t in got if t[0] == "referral_converted"]
    assert len(credited) == len(set(credited))  # an invitee credited once, to one referrer
    withheld = {t[2].removeprefix("withheld:") for t in got if t[0] == "referral_flagged"}
    assert not withheld & set(credited)
