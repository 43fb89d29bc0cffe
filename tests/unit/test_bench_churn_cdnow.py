"""The online CDNOW harness on a small hand-made purchase history."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from benchmarks.bench_churn_cdnow import Options, events_of, main, run_horizon
from benchmarks.datasets import Purchase

START = date(2020, 1, 1)


def _history() -> list[Purchase]:
    """60 customers: customer i buys every (i % 9 + 3) days, stopping after day 20 + 3 i."""
    out = []
    for i in range(60):
        day = i % 7
        while day <= 20 + 3 * i and day < 240:
            out.append(Purchase(f"{i:03d}", START + timedelta(days=day), 1, 10.0 + i))
            day += i % 9 + 3
        out.append(Purchase(f"{i:03d}", START + timedelta(days=day), 1, 0.0))  # a free item
    return out


def test_events_are_time_ordered_and_zero_amounts_count_only_for_any() -> None:
    purchases = _history()
    every = events_of(purchases, "any")
    paid = events_of(purchases, "paid")
    assert len(every) == len(purchases) and len(paid) == len(purchases) - 60
    assert [ts for ts, _, _ in every] == sorted(ts for ts, _, _ in every)


def test_snapshot_scores_everyone_seen_and_labels_from_what_follows() -> None:
    purchases = _history()
    events = events_of(purchases, "any")
    cutoff = START + timedelta(days=120)
    online, _elapsed = run_horizon(events, [cutoff], Options(horizon_days=30))
    (snap,) = online.snapshots
    seen = {p.customer for p in purchases if p.day <= cutoff}
    assert sorted(snap.users) == sorted(seen)
    window = (cutoff, cutoff + timedelta(days=30))
    returned = {p.customer for p in purchases if window[0] < p.day <= window[1]}
    assert snap.labels == [0 if u in returned else 1 for u in snap.users]
    last = {u: max(p.day for p in purchases if p.customer == u and p.day <= cutoff) for u in seen}
    expected_recency = [(cutoff + timedelta(days=1) - last[u]).days for u in snap.users]
    assert [round(r) for r in snap.recency] == expected_recency
    assert all(0.0 < p < 1.0 for p in snap.model + snap.bgnbd)
    assert online.learned > 0 and online.points >= online.learned


def test_misuse_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--horizons", "x"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_batch_fit_scores_the_same_population() -> None:
    events = events_of(_history(), "any")
    cutoff = START + timedelta(days=150)
    online, _elapsed = run_horizon(events, [cutoff], Options(horizon_days=30, batch_fit=True))
    (snap,) = online.snapshots
    assert snap.batch_fit is not None and len(snap.batch_fit) == len(snap.users)
    assert all(0.0 < p < 1.0 for p in snap.batch_fit)
    assert len(online.examples) == online.learned


def test_other_models_learn_the_same_examples_and_score_the_same_population() -> None:
    events = events_of(_history(), "any")
    cutoff = START + timedelta(days=120)
    options = Options(horizon_days=30, also=("mbgnbd", "offset-bgnbd"))
    online, _elapsed = run_horizon(events, [cutoff], options)
    (snap,) = online.snapshots
    assert sorted(snap.others) == ["mbgnbd", "offset-bgnbd"]
    assert all(len(p) == len(snap.users) for p in snap.others.values())
    assert all(0.0 < p < 1.0 for p in snap.others["mbgnbd"])


def test_unknown_also_model_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--also", "nope", "--horizons", "30"])
    assert info.value.code == 2
    assert "unknown models" in capsys.readouterr().err
