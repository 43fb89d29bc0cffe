"""Leaderboards by period and measure: points only grow within a period, each partition
keeps its top users exactly, and merging every partition's boards gives the cluster's."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import msgspec

from scoring.config import load_config
from scoring.leaderboards import merge_boards, month_of, period_label, week_of
from scoring.partition_state import PartitionShared, PartitionState
from simulator import generate
from streams.replay import run_replay
from tests.helpers import DAY, T0


def test_a_board_restored_from_its_stored_form_goes_on_exactly() -> None:
    """Offers placed batch by batch give the exact top N, also across a restart from the
    stored (decoded) boards."""
    shared = PartitionShared()
    rng = random.Random(7)
    totals: dict[str, float] = defaultdict(float)
    for step in range(2000):
        if step % 37 == 0:  # a batch ends: the offers so far are placed
            shared.snapshot()
        if step % 500 == 499:  # a restart: the state comes back from its stored bytes
            raw = msgspec.msgpack.encode(shared.snapshot())
            shared = PartitionShared(msgspec.msgpack.decode(raw, type=PartitionState))
        user = f"u{rng.randrange(120)}"
        totals[user] += rng.choice([1.0, 3.0])
        shared.rank("week:9:social", user, totals[user], 10)
    best = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(u, v) for v, u in shared.boards()["week:9:social"]] == best


def test_a_partition_board_is_exactly_the_top_n() -> None:
    shared = PartitionShared()
    rng = random.Random(5)
    totals: dict[str, float] = defaultdict(float)
    for _ in range(3000):  # values only grow, as points do
        user = f"u{rng.randrange(300)}"
        totals[user] += rng.choice([1.0, 2.0, 0.5])
        shared.rank("all:0:composite", user, totals[user], 25)
    board = shared.boards()["all:0:composite"]
    best = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:25]
    assert [(u, v) for v, u in board] == best


def test_a_new_period_replaces_the_old_board() -> None:
    shared = PartitionShared()
    shared.rank("week:100:social", "a", 3.0, 10)
    shared.rank("week:101:social", "b", 1.0, 10)
    shared.rank("week:101:composite", "b", 1.0, 10)
    assert sorted(shared.boards()) == ["week:101:composite", "week:101:social"]


def test_periods_are_utc_weeks_from_monday_and_calendar_months() -> None:
    monday = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday
    assert week_of(monday) == week_of(monday + 6 * DAY + DAY - 1) == week_of(monday - 1) + 1
    assert period_label("week", week_of(monday + 3 * DAY)) == "2026-01-05"
    assert period_label("month", month_of(T0 + 40 * DAY)) == "2026-02"


def test_merged_boards_of_four_partitions_are_the_cluster_top(tmp_path: Path) -> None:
    stream, _ = generate(users=200, days=12, seed=23)
    events = list(stream)
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = run_replay(source, load_config(), progress=False, partitions=4, churn=False)
    boards = [result.boards[p] for p in sorted(result.boards)]
    assert len(boards) == 4
    label, top = merge_boards(boards, "all", "composite", 10)
    everyone = sorted(
        ((u, round(sum(s * x for s, x in zip(share(), st.periods.all_points, strict=True)), 4))
         for u, st in result.states.items() if st.periods.all_points),
        key=lambda e: (-e[1], e[0]),
    )
    assert label == "all" and top == everyone[:10]
    week_label, week_top = merge_boards(boards, "week", "social", 5)
    last_week = max(st.periods.week for st in result.states.values())
    assert week_label == period_label("week", last_week) and len(week_top) == 5


def share() -> list[float]:
    from scoring.dimensions import DimensionModel

    weights = DimensionModel(load_config()).composite_weight
    return [w / sum(weights) for w in weights]
