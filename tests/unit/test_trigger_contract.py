"""The contract every registered trigger rule keeps (after river's `checks/`): run for each
rule in the registry, built-in or plug-in, from the cases the rule itself provides.

- the moment that should fire, fires exactly once, and its record validates against the
  common envelope and the rule's own JSON Schema;
- the near miss does not fire;
- the same moment processed again (a replayed event, a repeated sweep) fires nothing new;
- the user's state and the partition's shared state survive an encode/decode just before
  the moment: it fires the same.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from scoring.config import config_from_dict
from scoring.engine import ScoringEngine
from scoring.events import Event, Properties
from scoring.partition_state import PartitionShared, decode_partition_state, encode_partition_state
from scoring.records import Trigger, stamp
from scoring.state import UserState
from scoring.state_codec import codec_for
from scoring.triggers.registry import rules
from scoring.triggers.rule import ContractCase, Step, TriggerRule
from streams.engine_factory import build_engine

BUILTIN_SCHEMAS = [
    json.loads(p.read_text()) for p in resources.files("scoring").joinpath("schemas").iterdir()
    if p.name.endswith(".json")
]


def validator_for(rule: type[TriggerRule]) -> Draft202012Validator:
    own = json.loads(rule.schema_path().read_text())
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in [*BUILTIN_SCHEMAS, own]
    )
    return Draft202012Validator(own, registry=registry)


def with_plugin(rule: type[TriggerRule], rules_file: dict[str, Any]) -> dict[str, Any]:
    """The case's rules file, naming the rule's module when it is a plug-in."""
    if rule.__module__ not in PLUGINS:
        return rules_file
    triggers = dict(rules_file.get("triggers", {}))
    triggers["plugins"] = [rule.__module__]
    return {**rules_file, "triggers": triggers}


class Run:
    """A case played through one engine: per-user states, one partition's shared state."""

    def __init__(self, rule: type[TriggerRule], case: ContractCase) -> None:
        self.rule = rule
        self.config = config_from_dict(with_plugin(rule, case.rules))
        self.engine: ScoringEngine = build_engine(self.config, churn=None)
        self.shared: PartitionShared = self.engine.partition_shared(0)
        self.states: dict[str, UserState] = {}
        self.codec = codec_for(self.config)

    def step(self, i: int, step: Step) -> list[Trigger]:
        if step.event_type is None:
            out = self.engine.sweep(self.states[step.user], step.user, step.at_ms, self.shared)
        else:
            amount = float(step.properties.get("amount", 0.0))
            props = msgspec.convert(step.properties, Properties) if step.properties else None
            event = Event(f"{step.user}-{i}", step.user, step.event_type, step.at_ms, amount,
                          None, props)
            out = self.engine.apply(self.states.get(step.user), event, step.at_ms, self.shared)
        if out.state is not None:
            self.states[step.user] = out.state
        triggers = list(out.triggers)
        routed = list(out.routed)
        while routed:  # messages to other users, delivered at once (as replay does)
            message = routed.pop(0)
            got = self.engine.receive(self.states.get(message.to), message, self.shared)
            assert got.state is not None
            self.states[message.to] = got.state
            triggers += got.triggers
            routed += got.routed
        return [t for t in triggers if t.type == self.rule.trigger_type]

    def round_trip(self, user: str) -> None:
        """Store and read back what a restarted worker would read back: the states, the
        partition record, the population rebuilt from the states, the snapshots other
        partitions shared (the exchange: the sketches topic)."""
        if user in self.states:
            self.states[user] = self.codec.decode(self.codec.encode(self.states[user]))
        stored = decode_partition_state(encode_partition_state(self.shared.snapshot()))
        self.shared = self.engine.partition_shared(0, stored, self.shared.exchange)
        for state in self.states.values():
            self.shared.population.restore(state)


def fired(rule: type[TriggerRule], case: ContractCase, round_trip_before: int | None = None
          ) -> list[tuple[int, Trigger]]:
    run = Run(rule, case)
    out: list[tuple[int, Trigger]] = []
    for i, step in enumerate(case.steps):
        if i == round_trip_before:
            run.round_trip(step.user)
        out += [(i, t) for t in run.step(i, step) if t.user_id == step.user]
    return out


def as_sent(rule: type[TriggerRule], trigger: Trigger, config: Any) -> dict[str, Any]:
    hours = config.triggers.rule(rule.trigger_type).expires_hours
    return msgspec.to_builtins(stamp(trigger, 1_767_225_600_000, hours))  # type: ignore[no-any-return]


import tests.plugins.night_owl  # noqa: E402, F401 - a plug-in keeps the same contract

RULES = rules()
PLUGINS = {"tests.plugins.night_owl"}


@pytest.mark.parametrize("rule", RULES, ids=[r.trigger_type for r in RULES])
def test_the_moment_fires_exactly_once_and_validates(rule: type[TriggerRule]) -> None:
    fires, _ = rule.contract_cases()
    assert fires.fires
    out = fired(rule, fires)
    assert len(out) == 1, f"{rule.trigger_type} fired {len(out)} times: {out}"
    _, trigger = out[0]
    record = as_sent(rule, trigger, config_from_dict(with_plugin(rule, fires.rules)))
    validator_for(rule).validate(record)
    assert record["type"] == rule.trigger_type and record["schema"] == "trigger/v1"


@pytest.mark.parametrize("rule", RULES, ids=[r.trigger_type for r in RULES])
def test_the_near_miss_does_not_fire(rule: type[TriggerRule]) -> None:
    _, near = rule.contract_cases()
    assert not near.fires
    assert fired(rule, near) == []


@pytest.mark.parametrize("rule", RULES, ids=[r.trigger_type for r in RULES])
def test_the_same_moment_again_fires_nothing_new(rule: type[TriggerRule]) -> None:
    fires, _ = rule.contract_cases()
    ((at, _first),) = fired(rule, fires)
    run = Run(rule, fires)
    for i, step in enumerate(fires.steps[: at + 1]):
        run.step(i, step)
    assert run.step(at, fires.steps[at]) == []  # replayed: the same event id, or sweep


@pytest.mark.parametrize("rule", RULES, ids=[r.trigger_type for r in RULES])
def test_state_survives_encode_decode_before_the_moment(rule: type[TriggerRule]) -> None:
    fires, _ = rule.contract_cases()
    ((at, first),) = fired(rule, fires)
    ((at_again, again),) = fired(rule, fires, round_trip_before=at)
    assert at_again == at
    assert msgspec.to_builtins(again) == msgspec.to_builtins(first)


def test_every_built_in_type_is_registered_with_a_fixed_code() -> None:
    codes = {r.trigger_type: r.code for r in RULES}
    assert {t: c for t, c in codes.items() if c < 100} == {
        "reengagement_nudge": 0, "vip_promotion": 1, "tier_change": 2, "milestone": 3,
        "streak": 4, "onboarding_stalled": 5, "ambassador_candidate": 6, "win_back": 7,
        "referral_converted": 8, "referral_flagged": 9, "referral_ask": 10,
    }
