"""Population calibration: the histograms, the decay-normalised placement, and tiers that hold
their target shares on populations ten times apart in activity (issue #13)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from scoring.config import config_from_dict
from scoring.histogram import ZERO_KEY, LogBins, Ranked
from scoring.population_reference import (
    Opening,
    PartitionPopulation,
    SnapshotExchange,
    decode_shared,
    encode_shared,
)
from scoring.state import UserState
from simulator import generate
from streams.replay import run_replay
from tests.helpers import DAY, HOUR, T0, ReadBack, ev

# ---------------------------------------------------------------------------------------------
# histograms
# ---------------------------------------------------------------------------------------------


def test_mid_rank_percentiles_and_quantiles() -> None:
    ranked = Ranked({1: 2, 5: 1, 9: 1, ZERO_KEY: 4})  # 8 values: four zeros
    assert ranked.total == 8
    assert ranked.percentile(ZERO_KEY) == 2 / 8  # ties share the middle of their ranks
    assert ranked.percentile(1) == (4 + 1) / 8
    assert ranked.percentile(9) == (7 + 0.5) / 8
    assert ranked.percentile(10) == 1.0 and ranked.percentile(3) == 6 / 8
    assert ranked.quantile_key(0.5) == ZERO_KEY and ranked.quantile_key(0.99) == 9
    assert Ranked({}).percentile(3) is None and Ranked({}).quantile_key(0.5) is None


def test_log_bins_are_within_the_relative_accuracy() -> None:
    bins = LogBins(0.01)
    for value in (0.003, 0.5, 1.0, 7.77, 1234.5, 2 ** 0.0288):
        middle = 2 ** bins.log2_of(bins.key(math.log2(value)))
        assert abs(middle - value) / value <= 0.01 + 1e-12


def test_merges_do_not_depend_on_order_and_removals_are_exact() -> None:
    parts = [{1: 2, 3: 1}, {3: 4}, {ZERO_KEY: 1, 2: 2}]
    forward = Ranked.merged(parts)
    backward = Ranked.merged(reversed(parts))
    assert (forward.keys, forward.cumulative) == (backward.keys, backward.cumulative)
    population = PartitionPopulation(window_days=28)
    a, b = UserState(), UserState()
    population.place(a, 100, [1, 2, 3, 4, 5, 6])
    population.place(b, 100, [1, 2, 3, 4, 5, 7])
    population.place(a, 101, [2, 2, 3, 4, 5, 6])  # a moved on: its old entry left
    snap = population.snapshot(0, 100, 101, 0)
    assert snap.users == 2 and snap.counts[0] == {1: 1, 2: 1}
    assert population.days[100][0] == {1: 1}
    assert population.snapshot(0, 101, 150, 0).users == 0  # past the 28-day window


def test_shared_items_round_trip_on_the_wire() -> None:
    snap = PartitionPopulation(28).snapshot(3, 10, 12, 99)
    assert decode_shared(encode_shared(snap)) == snap
    opening = Opening(partition=2, at_ms=5)
    assert decode_shared(encode_shared(opening)) == opening


def test_a_reference_waits_for_every_partition_opened_before_its_day() -> None:
    exchange = SnapshotExchange()
    exchange.receive(Opening(partition=0, at_ms=10 * DAY + HOUR))
    exchange.receive(Opening(partition=1, at_ms=11 * DAY + HOUR))  # opened on day 11
    assert exchange.waiting_for(11) == [0]
    assert exchange.waiting_for(12) == [0, 1]
    exchange.receive(PartitionPopulation(28).snapshot(0, 10, 11, 11 * DAY))
    assert exchange.waiting_for(11) == [] and exchange.waiting_for(12) == [1]
    forced = exchange.adopt(0, 12, force=True)
    assert exchange.forced == 1 and exchange.stalled == {1}
    assert forced.parts == {0: 11}  # the snapshot covering day 11 (days 10 to 11)
    assert exchange.waiting_for(13) == [0]  # 1 is stalled: not waited for until it publishes


# ---------------------------------------------------------------------------------------------
# placement
# ---------------------------------------------------------------------------------------------


def test_a_users_rank_does_not_change_while_nobody_acts() -> None:
    """Decay is normalised: users last seen at different times are compared as if at one."""
    eng = ReadBack(config_from_dict({}))
    early, late = UserState(), UserState()
    early = eng.apply(None, ev("early", "like", T0), T0).state
    late = eng.apply(None, ev("late", "like", T0 + 7 * DAY), T0 + 7 * DAY).state
    assert early is not None and late is not None
    calibration = eng.calibration
    keys_early = calibration.dimension_keys(early.dims, early.last_ms)
    keys_late = calibration.dimension_keys(late.dims, late.last_ms)
    # one week of activity's 7-day half-life: the later like is worth twice as much
    assert keys_late[0] - keys_early[0] == pytest.approx(1 / calibration.width, abs=1)
    for when in (T0 + 8 * DAY, T0 + 30 * DAY):
        at = [eng.dimensions.at(s.dims, s.last_ms, when)[0] for s in (early, late)]
        assert at[1] / at[0] == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------
# populations ten times apart
# ---------------------------------------------------------------------------------------------

CASUAL_HEAVY = {"casual": 0.95, "lapsing": 0.05}
CORE_HEAVY = {"core": 0.9, "returning": 0.1}
TARGETS = {"vip": 5.0, "gold": 20.0, "silver": 50.0}  # top shares, cumulative


def standings(
    tmp: Path, mix: dict[str, float], seed: int, rules: dict[str, Any], users: int = 300
) -> dict:  # type: ignore[type-arg]
    stream, _ = generate(users=users, days=40, seed=seed, mix=mix)
    events = list(stream)
    path = tmp / f"events-{seed}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = run_replay(path, config_from_dict(rules), progress=False, churn=False,
                        triggers=False)
    records = [msgspec.to_builtins(result.score_record(u)) for u in result.states]
    active = [r for r in records if r["days_since_last_event"] <= 28]
    tiers = Counter(r["tier"] for r in active)
    cumulative, total = {}, 0
    for name in ("vip", "gold", "silver"):
        total += tiers[name]
        cumulative[name] = 100.0 * total / len(active)
    scores = sorted(r["engagement_score"] for r in active)
    return {
        "events_per_user": len(events) / len(result.states),
        "shares": cumulative, "tiers": tiers, "active": len(active),
        "median": scores[len(scores) // 2],
        "calibration": Counter(r["calibration"] for r in records),
    }


@pytest.fixture(scope="module")
def populations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[type-arg]
    tmp = tmp_path_factory.mktemp("populations")
    return {
        "casual": standings(tmp, CASUAL_HEAVY, 31, {}),
        "core": standings(tmp, CORE_HEAVY, 32, {}),
        "core_absolute": standings(tmp, CORE_HEAVY, 33, {"scoring": {"calibration": "absolute"}},
                                   users=60),
    }


def test_the_two_populations_are_ten_times_apart(populations: dict) -> None:  # type: ignore[type-arg]
    assert populations["core"]["events_per_user"] >= 10 * populations["casual"]["events_per_user"]


@pytest.mark.parametrize("name", ["casual", "core"])
def test_tiers_hold_their_shares_on_any_population(populations: dict, name: str) -> None:  # type: ignore[type-arg]
    found = populations[name]
    assert found["calibration"] == Counter({"population": 300})
    assert found["active"] >= 250
    assert abs(found["shares"]["vip"] - TARGETS["vip"]) <= 2.0, found
    assert abs(found["shares"]["gold"] - TARGETS["gold"]) <= 3.0, found
    assert abs(found["shares"]["silver"] - TARGETS["silver"]) <= 4.0, found
    assert sum(1 for n in found["tiers"].values() if n) >= 3
    assert 40 <= found["median"] <= 60  # a percentile's median


def test_absolute_scores_saturate_where_percentiles_do_not(populations: dict) -> None:  # type: ignore[type-arg]
    absolute = populations["core_absolute"]
    assert absolute["calibration"] == Counter({"absolute": 60})
    assert absolute["median"] >= 95  # the fixed constants fit another population
    assert absolute["shares"]["vip"] > 50
