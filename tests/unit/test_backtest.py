"""`engage backtest` end to end on a small purchase table, its pieces, and its misuse."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from scoring.churn.backtest import Scored, bgnbd_baseline, churn_labels, compare
from scoring.churn.evaluation import roc_auc, scorecard
from scoring.churn.lifetime import Summary
from streams.backtest import parse_cutoff
from streams.cli import main
from streams.purchase_file import (
    Purchase,
    PurchaseFileError,
    parse_purchase_line,
    purchase_events,
    read_purchases,
)

START = date(1997, 1, 1)  # before events.min_timestamp's default floor (2000): lowered
CUTOFF = START + timedelta(days=120)
HORIZON = 30


def _days(i: int) -> list[int]:
    """Customer i buys every (i % 9 + 3) days from day i % 7 until day 20 + 3 i (< 240)."""
    days, day = [], i % 7
    while day <= 20 + 3 * i and day < 240:
        days.append(day)
        day += i % 9 + 3
    return days


def _write_table(path: Path) -> Path:
    """The CDNOW sample's five-column layout (master id, customer, date, quantity, amount),
    customer by customer as the real file is."""
    lines = []
    for i in range(60):
        for day in _days(i):
            stamp = (START + timedelta(days=day)).strftime("%Y%m%d")
            lines.append(f" {i + 1000:05d} {i:04d} {stamp}  1   {10.0 + i:.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _expected() -> tuple[list[str], list[int], list[float]]:
    """Population (everyone with a purchase by the cut-off), labels and silences, by hand."""
    users, labels, silences = [], [], []
    for i in range(60):
        before = [d for d in _days(i) if d <= 120]
        if not before:
            continue
        users.append(f"{i:04d}")
        labels.append(0 if any(120 < d <= 120 + HORIZON for d in _days(i)) else 1)
        silences.append(121 - before[-1] - 0.5)  # noon of the last day to the cut-off's end
    return users, labels, silences


def test_backtest_on_a_purchase_table_prints_exact_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _write_table(tmp_path / "purchases.txt")
    examples = tmp_path / "examples.jsonl"
    code = main(["backtest", str(table), "--cutoff", CUTOFF.isoformat(), "--horizon",
                 str(HORIZON), "--json", "--no-progress", "--examples", str(examples)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    users, labels, silences = _expected()
    assert (result["users"], result["churned"]) == (len(users), sum(labels)) == (60, 35)
    assert result["cutoff"] == "1997-05-01T23:59:59.999Z"
    assert result["dead_letters"] == {}
    scorers = result["scorers"]
    assert sorted(scorers) == ["bgnbd", "engage", "mbgnbd", "recency_only"]
    assert scorers["recency_only"]["roc_auc"] == pytest.approx(roc_auc(silences, labels))
    top = {"capture10": 0.171429, "lift10": 1.714286, "capture20": 0.342857, "lift20": 1.714286}
    bgnbd = {"roc_auc": 0.977143, "pr_auc": 0.986189, "brier": 0.090265, "ece": 0.116816, **top}
    mbgnbd = {"roc_auc": 0.976, "pr_auc": 0.985518, "brier": 0.092178, "ece": 0.120184, **top}
    # the default model: MBG/NBD's log-odds plus the corrections learned before the cut-off
    engage = {"roc_auc": 0.986286, "pr_auc": 0.991133, "brier": 0.06907, "ece": 0.087125, **top}
    for name, figures in (("bgnbd", bgnbd), ("mbgnbd", mbgnbd), ("engage", engage)):
        got = {k: round(v, 6) for k, v in scorers[name].items() if k != "calibration"}
        assert got == figures, name
    paired = result["paired"]
    assert sorted(paired) == ["bgnbd", "mbgnbd", "recency_only"]
    assert paired["bgnbd"]["delta"] == pytest.approx(0.986286 - 0.977143, abs=1e-6)
    assert paired["recency_only"]["delta"] == pytest.approx(
        0.986286 - scorers["recency_only"]["roc_auc"], abs=1e-6
    )
    assert all(d["low"] < d["delta"] < d["high"] for d in paired.values())
    assert result["model"] == "lifetime@13"
    assert sum(b["count"] for b in scorers["engage"]["calibration"]) == 60
    written = [json.loads(line) for line in examples.read_text().splitlines()]
    # every point resolved before the cut-off; the trainer learns one at observed + horizon
    assert (len(written), result["examples_learned"]) == (3106, 2633)
    assert {w["label"] for w in written} == {0, 1}
    assert all(w["observed_at"] < result["cutoff"] for w in written)


def test_backtest_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _write_table(tmp_path / "purchases.txt")
    assert main(["backtest", str(table), "--cutoff", CUTOFF.isoformat(), "--horizon",
                 str(HORIZON), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(
        "cut-off 1997-05-01T23:59:59.999Z, horizon 30 d: 60 users in the population, 35 churned"
    )
    assert "calibration of engage by decile" in out and "calibration of bgnbd by decile" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--horizon", "30"], "the following arguments are required: --cutoff"),
        (["--cutoff", "1997-13-01", "--horizon", "30"], "neither a date YYYY-MM-DD"),
        (["--cutoff", "1997-05-01", "--horizon", "0"], "--horizon must be more than 0"),
        (["--cutoff", "1997-07-01", "--horizon", "90"], "labels would be incomplete"),
        (["--cutoff", "1997-05-01", "--horizon", "30", "--examples", "x.parquet"],
         "ending in .jsonl"),
    ],
)
def test_misuse_prints_usage_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    table = _write_table(tmp_path / "purchases.txt")
    with pytest.raises(SystemExit) as exit_info:
        main(["backtest", str(table), "--no-progress", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: engage backtest") and message in err


def test_a_file_that_is_not_a_purchase_table_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1 0001 19970101\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["backtest", str(bad), "--cutoff", "1997-01-02", "--horizon", "1"])
    assert exit_info.value.code == 2
    assert "bad.txt:1: expected 4 or 5 columns" in capsys.readouterr().err


def test_purchase_lines_in_both_cdnow_layouts() -> None:
    sample = parse_purchase_line(" 00004 0001 19970101  2   29.33", "x")
    master = parse_purchase_line("00001 19970101 1 11.77", "x")
    assert sample == Purchase("0001", date(1997, 1, 1), 2, 29.33)
    assert master == Purchase("00001", date(1997, 1, 1), 1, 11.77)
    assert parse_purchase_line("id date qty amount", "x") is None
    assert parse_purchase_line("   ", "x") is None
    with pytest.raises(PurchaseFileError, match="date YYYYMMDD"):
        parse_purchase_line("0001 1997-01-01 1 2.0", "f:3")


def test_purchase_events_are_in_time_order_at_noon(tmp_path: Path) -> None:
    table = _write_table(tmp_path / "purchases.txt")
    purchases = read_purchases(table)
    events = list(purchase_events(purchases))
    assert len(events) == len(purchases)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert events[0]["ts"] == "1997-01-01T12:00:00.000Z"
    assert len({e["event_id"] for e in events}) == len(events)


def test_cutoff_date_means_the_end_of_that_day() -> None:
    assert parse_cutoff("1997-09-30") == parse_cutoff("1997-10-01T00:00:00Z") - 1


def test_compare_needs_both_outcomes_and_fits_bgnbd_only_with_repeaters() -> None:
    rows = [Scored(str(i), 0.5, float(i), Summary(0, 0.0, 10.0)) for i in range(4)]
    with pytest.raises(ValueError, match="all 4 users churned"):
        compare(rows, [1, 1, 1, 1], 30.0, "engage")
    result = compare(rows, [0, 1, 0, 1], 30.0, "engage")
    assert result["bgnbd_params"] is None and "bgnbd" not in result["scorers"]
    assert bgnbd_baseline([r.summary for r in rows], 30.0) is None
    assert churn_labels(["a", "b"], {"b"}) == [1, 0]


def test_scorecard_of_a_ranking_has_no_calibration() -> None:
    card = scorecard([3.0, 2.0, 1.0, 0.0], [1, 1, 0, 0], probabilistic=False)
    assert card == {"roc_auc": 1.0, "pr_auc": 1.0, "capture10": 0.2, "lift10": 2.0,
                    "capture20": 0.4, "lift20": 2.0}
    probabilities = scorecard([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], probabilistic=True)
    assert probabilities["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    assert probabilities["ece"] == pytest.approx(0.15)
