"""Reward budgets: per trigger type, at most N treatment triggers a UTC day across every
partition (each partition spends its share; the shares add up to N exactly), what a budget
held back counted and recorded for triggers.audit."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from scoring.config import config_from_dict
from scoring.partition_state import PartitionShared
from simulator import generate
from streams.replay import run_replay
from tests.helpers import DAY

SCHEMAS = Path(__file__).resolve().parents[2] / "scoring" / "schemas"


@pytest.mark.parametrize(("budget", "partitions"), [(7, 4), (10, 3), (1, 4)])
def test_shares_add_up_to_the_budget(budget: int, partitions: int) -> None:
    shares = [PartitionShared(None, p, partitions).budget_share(budget)
              for p in range(partitions)]
    assert sum(shares) == budget and max(shares) - min(shares) <= 1


def test_a_type_never_exceeds_its_daily_budget_across_partitions(tmp_path: Path) -> None:
    stream, _ = generate(users=400, days=12, seed=17)
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in stream))
    budget = 9
    rules = tmp_path / "rules.toml"
    rules.write_text(f"[triggers.streak]\ndaily_budget = {budget}\n")
    unbudgeted, budgeted = tmp_path / "free.jsonl", tmp_path / "budget.jsonl"
    run_replay(source, config_from_dict({}), triggers_path=unbudgeted, progress=False,
               partitions=4)
    result = run_replay(source, config_from_dict({"triggers": {"streak": {
        "daily_budget": budget}}}), triggers_path=budgeted, progress=False, partitions=4)

    def per_day(path: Path) -> Counter[str]:
        return Counter(t["event_time"][:10] for line in path.read_text().splitlines()
                       if (t := json.loads(line))["type"] == "streak"
                       and t["variant"] == "treatment")

    free, capped = per_day(unbudgeted), per_day(budgeted)
    assert max(free.values()) > budget  # the budget binds on some days...
    assert max(capped.values()) <= budget  # ...and is never exceeded, all partitions together
    held = result.summary["triggers"].get("streak/suppressed_budget", 0)
    assert held > 0  # counted, and (live) on triggers.audit


def test_what_a_budget_held_back_is_recorded_for_the_audit_topic() -> None:
    from scoring.events import Event
    from streams.engine_factory import build_engine

    config = config_from_dict({"triggers": {"milestone": {"daily_budget": 1}}})
    engine = build_engine(config, churn=None)
    shared = PartitionShared(None, 0, 1)
    t0 = 1_767_225_600_000
    first = engine.apply(None, Event("e1", "u1", "purchase", t0, 5.0), t0, shared)
    assert [t.type for t in first.triggers].count("milestone") == 1
    second = engine.apply(None, Event("e2", "u2", "purchase", t0 + 1, 5.0), t0, shared)
    assert "milestone" not in [t.type for t in second.triggers]
    (held,) = second.suppressed
    assert (held.type, held.user_id, held.reason) == ("milestone", "u2", "budget")
    held.suppressed_at = "2026-01-01T00:00:00.000Z"
    import msgspec

    record = msgspec.to_builtins(held)
    Draft202012Validator(json.loads((SCHEMAS / "trigger-suppressed.v1.json").read_text())
                         ).validate(record)
    # the next day the budget is there again
    third = engine.apply(None, Event("e3", "u3", "purchase", t0 + DAY, 5.0), t0 + DAY, shared)
    assert "milestone" in [t.type for t in third.triggers]
