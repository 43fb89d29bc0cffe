"""Shared by the benchmarks: cached simulated traffic and small statistics."""

from __future__ import annotations

import gzip
import json
import statistics
from pathlib import Path

from simulator import Truth, generate

CACHE = Path(__file__).resolve().parents[1] / "var" / "bench"


def simulated_file(users: int, days: float, seed: int) -> tuple[Path, list[Truth]]:
    """A gzipped JSONL file of simulated events (cached), and its ground truth."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"sim-u{users}-d{days:g}-s{seed}.jsonl.gz"
    events, truth = generate(users=users, days=days, seed=seed)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt", compresslevel=1) as out:
            for event in events:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
        tmp.rename(path)
    return path, truth


def broker_or_local(named: str | None) -> str:
    """The broker named (flag or $KAFKA_BOOTSTRAP_SERVERS), else the local one, started."""
    if named:
        return named
    from deploy.local_kafka import default_broker, up

    local = default_broker()
    up(local)
    return local.bootstrap


def median(values: list[float]) -> float:
    return statistics.median(values)


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    """Mann-Whitney ROC AUC with ties counted as one half."""
    pairs = sorted(zip(scores, labels, strict=True))
    ranks: list[float] = [0.0] * len(pairs)
    i = 0
    while i < len(pairs):
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(1 for _, y in pairs if y)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum = sum(r for r, (_, y) in zip(ranks, pairs, strict=True) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
