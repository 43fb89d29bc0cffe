"""Metrics of a churn ranking at one cut-off: ranking, precision, calibration, targeting.

Pure Python over two equal-length sequences: scores (higher = more likely to churn; for the
calibration metrics, probabilities in [0, 1]) and labels (1/True = churned). Tied scores are
never broken by input order: the ROC AUC counts a tied pair as one half, average precision
steps once per distinct score, calibration deciles keep a tie group in one bin, and the
top-k figures count a tie group straddling the cut by its expected share (as if ties were
broken at random).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """One decile of predictions: its score range, size, mean prediction and churn rate."""

    lowest: float
    highest: float
    count: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True, slots=True)
class TopShare:
    """The top `share` of users by score: who they catch and how much better than random."""

    share: float
    users: float  # share x n (fractional when n x share is not whole)
    churners: float  # expected churners among them (tie groups at the cut count pro rata)
    precision: float  # churners / users
    capture: float  # churners / all churners
    lift: float  # precision / base rate


def _checked(scores: Sequence[float], labels: Sequence[bool | int]) -> list[tuple[float, int]]:
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels")
    if not scores:
        raise ValueError("no scores to evaluate")
    pairs = []
    for s, y in zip(scores, labels, strict=True):
        if not math.isfinite(s):
            raise ValueError(f"score {s!r} is not finite")
        if y not in (0, 1):
            raise ValueError(f"label {y!r} is not 0/1")
        pairs.append((float(s), int(y)))
    return pairs


Groups = list[tuple[float, int, int]]  # (score, users, churners) per distinct score


def _groups_descending(pairs: list[tuple[float, int]]) -> Groups:
    """(score, users, churners) per distinct score, highest score first."""
    ordered = sorted(pairs, key=lambda p: p[0], reverse=True)
    return [
        (score, len(members), sum(y for _, y in members))
        for score, group in groupby(ordered, key=lambda p: p[0])
        for members in [list(group)]
    ]


def _both_classes(pairs: list[tuple[float, int]]) -> tuple[int, int]:
    positives = sum(y for _, y in pairs)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        raise ValueError("need at least one churned and one retained user")
    return positives, negatives


def roc_auc(scores: Sequence[float], labels: Sequence[bool | int]) -> float:
    """P(a random churner scores above a random retained user), ties counting one half."""
    pairs = _checked(scores, labels)
    return _roc_auc(_groups_descending(pairs), *_both_classes(pairs))


def _roc_auc(groups: Groups, positives: int, negatives: int) -> float:
    negatives_below = negatives  # retained users with a lower score than the current group
    wins = 0.0
    for _score, users, churners in groups:
        retained = users - churners
        negatives_below -= retained
        wins += churners * (negatives_below + retained / 2)
    return wins / (positives * negatives)


def average_precision(scores: Sequence[float], labels: Sequence[bool | int]) -> float:
    """PR AUC as average precision: sum over distinct thresholds of (recall gain) x precision."""
    pairs = _checked(scores, labels)
    return _average_precision(_groups_descending(pairs), _both_classes(pairs)[0])


def _average_precision(groups: Groups, positives: int) -> float:
    seen = caught = 0
    total = 0.0
    for _score, users, churners in groups:
        seen += users
        caught += churners
        total += (churners / positives) * (caught / seen)
    return total


def brier_score(probabilities: Sequence[float], labels: Sequence[bool | int]) -> float:
    """Mean squared difference between the probability and the outcome."""
    return _brier_score(_checked(probabilities, labels))


def _brier_score(pairs: list[tuple[float, int]]) -> float:
    return sum((p - y) ** 2 for p, y in pairs) / len(pairs)


def calibration_table(
    probabilities: Sequence[float], labels: Sequence[bool | int], bins: int = 10
) -> list[CalibrationBin]:
    """Equal-count bins by predicted probability (deciles by default), lowest first.

    A group of tied predictions goes whole to the bin where its middle rank falls, so bins
    can differ in size and a bin can be empty (then it is left out).
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    return _calibration_table(_checked(probabilities, labels), bins)


def _calibration_table(pairs: list[tuple[float, int]], bins: int = 10) -> list[CalibrationBin]:
    n = len(pairs)
    members: list[list[tuple[float, int]]] = [[] for _ in range(bins)]
    start = 0
    for _score, group in groupby(sorted(pairs, key=lambda p: p[0]), key=lambda p: p[0]):
        tied = list(group)
        middle = start + (len(tied) - 1) / 2
        members[min(bins - 1, int(middle * bins / n))].extend(tied)
        start += len(tied)
    return [
        CalibrationBin(
            lowest=b[0][0],
            highest=b[-1][0],
            count=len(b),
            mean_predicted=sum(p for p, _ in b) / len(b),
            observed_rate=sum(y for _, y in b) / len(b),
        )
        for b in members
        if b
    ]


def expected_calibration_error(table: Sequence[CalibrationBin]) -> float:
    """ECE: the count-weighted mean of |mean prediction - observed rate| over the bins."""
    total = sum(b.count for b in table)
    if not total:
        raise ValueError("empty calibration table")
    return sum(b.count * abs(b.mean_predicted - b.observed_rate) for b in table) / total


def top_share(scores: Sequence[float], labels: Sequence[bool | int], share: float) -> TopShare:
    """Capture, precision and lift among the `share` (0 < share <= 1) highest scores."""
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    pairs = _checked(scores, labels)
    return _top_share(_groups_descending(pairs), _both_classes(pairs)[0], len(pairs), share)


def _top_share(groups: Groups, positives: int, n: int, share: float) -> TopShare:
    users = share * n
    room = users
    churners = 0.0
    for _score, size, group_churners in groups:
        if room <= 0:
            break
        taken = min(size, room)
        churners += group_churners * taken / size
        room -= taken
    precision = churners / users
    base_rate = positives / n
    return TopShare(share, users, churners, precision, churners / positives, precision / base_rate)


def scorecard(
    scores: Sequence[float], labels: Sequence[bool | int], probabilistic: bool
) -> dict[str, object]:
    """Every figure a backtest reports for one scorer: ranking (ROC AUC, PR AUC), targeting
    (capture and lift at the top 10 % and 20 %) and, for probabilities, Brier, the decile
    calibration table and its ECE (a ranking such as days of silence has no calibration).
    The inputs are checked, sorted and grouped once for all of them (the same figures as
    the functions above, one by one)."""
    pairs = _checked(scores, labels)
    positives, negatives = _both_classes(pairs)
    groups = _groups_descending(pairs)
    n = len(pairs)
    top10, top20 = _top_share(groups, positives, n, 0.1), _top_share(groups, positives, n, 0.2)
    out: dict[str, object] = {
        "roc_auc": _roc_auc(groups, positives, negatives),
        "pr_auc": _average_precision(groups, positives),
        "capture10": top10.capture,
        "lift10": top10.lift,
        "capture20": top20.capture,
        "lift20": top20.lift,
    }
    if probabilistic:
        table = _calibration_table(pairs)
        out["brier"] = _brier_score(pairs)
        out["ece"] = expected_calibration_error(table)
        out["calibration"] = [
            {"count": b.count, "mean_predicted": b.mean_predicted,
             "observed_rate": b.observed_rate} for b in table
        ]
    return out
