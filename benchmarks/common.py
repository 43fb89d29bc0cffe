"""Shared by the benchmarks: cached simulated traffic and small statistics."""

from __future__ import annotations

import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scoring.churn import evaluation
from simulator import Truth, generate

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"


def simulated_file(users: int, days: float, seed: int) -> tuple[Path, list[Truth]]:
    """A gzipped JSONL file of simulated events (cached), and its ground truth."""
    path = CACHE / f"sim-u{users}-d{days:g}-s{seed}.jsonl.gz"
    events, truth = generate(users=users, days=days, seed=seed)
    write_cached(path, events)
    return path, truth


def write_cached(path: Path, events: Iterable[dict[str, Any]]) -> None:
    """Write `events` as gzipped JSONL to `path` unless it exists (written whole or not at
    all: a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt", compresslevel=1) as out:
            for event in events:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
        tmp.rename(path)


def benchmark_broker(named: str | None) -> str:
    """The broker named by --broker / KAFKA_BOOTSTRAP_SERVERS, else the local one (started)."""
    if named:
        return named
    from deploy.local_kafka import default_broker, up

    local = default_broker()
    up(local)
    return local.bootstrap


def start_worker(
    broker: str, prefix: str, app_id: str, partitions: int, metrics_port: int, data_dir: str,
    root: Path = ROOT, env: dict[str, str] | None = None, web_port: int | None = None,
) -> subprocess.Popen[bytes]:
    """An `engage worker` child process of the source tree `root`, quiet, in its own process
    group. The signing key only matters to the churn topology, which benchmarks do not judge."""
    from tests.integration.worker_process import free_port

    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--broker", broker,
         "--topic-prefix", prefix, "--app-id", app_id, "--partitions", str(partitions),
         "--metrics-port", str(metrics_port), "--web-port", str(web_port or free_port()),
         "--data-dir", data_dir, "--log-level", "error"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=env or {**os.environ, "ENGAGE_MODEL_SIGNING_KEY": "bench-signing-key"},
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def _scrape(port: int) -> tuple[float, float | None]:
    """(engage_events_consumed_total, process_cpu_seconds_total or None) of one worker."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0, None
    count, cpu = 0.0, None
    for line in text.splitlines():
        if line.startswith("engage_events_consumed_total{"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("process_cpu_seconds_total "):
            cpu = float(line.rsplit(" ", 1)[1])
    return count, cpu


def consumed_events(ports: list[int]) -> float:
    """engage_events_consumed_total summed over the workers serving metrics on `ports`."""
    return sum(_scrape(port)[0] for port in ports)


def scoring_rate(ports: list[int], n: int, before: float = 0.0, timeout_s: float = 900,
                 cpu_per_event: list[float] | None = None, poll_s: float = 0.5) -> float:
    """Events per second while the workers consume `n` more events, from the first poll
    that sees them start to the moment their counters reach `n` (interpolated between the
    two polls around it). Polls every `poll_s`: each poll renders every metric of every
    worker (~3.5 ms of its CPU, idle), and at 20 a second that alone took about a tenth of a
    worker's CPU, a load no Prometheus puts on it (15 s is the usual interval).

    `cpu_per_event` (one worker): appends the worker's CPU seconds per event between the
    first poll and the one that saw all `n` (process_cpu_seconds_total, every thread), when
    it exports it: a figure a busy machine disturbs far less than the rate."""
    first = prev = None
    first_count = prev_count = 0.0
    first_cpu: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        scraped = [_scrape(port) for port in ports]
        count, now = sum(c for c, _ in scraped) - before, time.monotonic()
        cpu = scraped[0][1] if len(scraped) == 1 else None
        if count > 0 and first is None:
            first, first_count, first_cpu = now, count, cpu
        if count >= n and first is not None and prev is not None and count > prev_count:
            last = prev + (now - prev) * (n - prev_count) / (count - prev_count)
            if cpu_per_event is not None and cpu is not None and first_cpu is not None:
                cpu_per_event.append((cpu - first_cpu) / (count - first_count))
            return (n - first_count) / max(last - first, 1e-9)
        if count >= n:  # all of it between two polls: too short to measure
            raise AssertionError(f"{n} events took under one poll; measure more events")
        prev, prev_count = now, count
        time.sleep(poll_s)
    raise AssertionError("the workers did not consume every event")


def median(values: list[float]) -> float:
    return statistics.median(values)


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    """Mann-Whitney ROC AUC with ties counted as one half; NaN without both classes."""
    try:
        return evaluation.roc_auc(scores, labels)
    except ValueError:
        return float("nan")
