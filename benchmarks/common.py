"""Shared by the benchmarks: cached simulated traffic and small statistics."""

from __future__ import annotations

import gzip
import json
import statistics
from pathlib import Path

from scoring.churn import evaluation
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
    """Mann-Whitney ROC AUC with ties counted as one half; NaN without both classes."""
    try:
        return evaluation.roc_auc(scores, labels)
    except ValueError:
        return float("nan")
