"""What churn labelling costs: today's daily observation design vs log-scale points.

Two populations, the same events for both designs, in one run:

- CDNOW_sample: real CD purchases of 2,357 customers over 18 months (dates shifted by a whole
  number of days into the engine's accepted range; every row is a `purchase` with its amount);
- a synthetic sparse population from the simulator: `--users` (20,000) over `--days` (35),
  personas casual 60 % (a visit every 2-6 days), lapsing 20 %, new 20 % (40 % of whom stall),
  one event per session (its `session_start`): about 14 events per user.

Today's design is measured by the engine itself (`run_replay`, churn on, triggers off): its
sweeps and resolved examples. The log-scale design (scoring/churn/schedule.py) is replayed on
the same (user, time) stream with a due-time heap: sweeps are visits with a label to settle,
points are resolved examples. Both count work up to the last event.

    python -m benchmarks.bench_churn_cost [--horizon 30] [--users 20000] [--days 35]
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import time
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.common import CACHE
from benchmarks.datasets import Purchase, load_cdnow
from scoring.churn.bgnbd import fit_bgnbd
from scoring.churn.lifetime import (
    LifetimeConfig,
    LifetimeState,
    lifetime_features,
    observe,
    summary_at,
)
from scoring.churn.mbgnbd import fit_mbgnbd
from scoring.churn.priors import PopulationParams
from scoring.churn.schedule import ObservationSchedule
from scoring.config import config_from_dict
from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms, parse_rfc3339_ms
from simulator import generate
from streams.replay import run_replay

SPARSE_MIX = {"casual": 0.6, "lapsing": 0.2, "new": 0.2}
CDNOW_SHIFT_DAYS = (date(2026, 1, 1) - date(1997, 1, 1)).days  # into the engine's time range


def cdnow_events(purchases: Sequence[Purchase]) -> list[dict[str, Any]]:
    """Contract-v1 `purchase` events at noon of each (shifted) day, in time order."""
    rows = sorted(purchases, key=lambda r: (r.day, r.customer))
    out = []
    for i, r in enumerate(rows):
        ts = ((r.day - date(1970, 1, 1)).days + CDNOW_SHIFT_DAYS) * MS_PER_DAY + 12 * 3_600_000
        out.append({
            "event_id": f"cdnow-{i}", "user_id": f"c{r.customer}", "type": "purchase",
            "ts": format_rfc3339_ms(ts + i % 1000),
            "properties": {"amount": r.amount, "quantity": r.quantity},
        })
    return out


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt", compresslevel=1) as out:
            for e in events:
                out.write(json.dumps(e, separators=(",", ":")) + "\n")
        tmp.rename(path)
    return path


def read_stream(path: Path) -> list[tuple[int, str]]:
    with gzip.open(path, "rt") as fh:
        return [
            (parse_rfc3339_ms(e["ts"]), e["user_id"]) for e in map(json.loads, fh)
        ]


def log_scale_cost(stream: list[tuple[int, str]], horizon_days: float) -> dict[str, Any]:
    """Points and sweeps of the log-scale design over a time-ordered (ts, user) stream."""
    schedule = ObservationSchedule(horizon_days)
    anchor: dict[str, int] = {}
    resolved: dict[str, int] = {}
    due: dict[str, int] = {}
    heap: list[tuple[int, str]] = []
    points = sweeps = 0
    labels = {0: 0, 1: 0}
    started = time.perf_counter()

    def reschedule(user: str) -> None:
        when = schedule.next_due_ms(user, anchor[user], resolved[user])
        if when is None:
            due.pop(user, None)
        else:
            due[user] = when
            heapq.heappush(heap, (when, user))

    for ts, user in stream:
        while heap and heap[0][0] <= ts:
            when, swept = heapq.heappop(heap)
            if due.get(swept) != when:
                continue
            sweeps += 1
            done, resolved[swept] = schedule.on_watermark(
                swept, anchor[swept], resolved[swept], when
            )
            points += len(done)
            labels[1] += len(done)
            reschedule(swept)
        if user in anchor and ts > anchor[user]:
            for d in schedule.on_event(user, anchor[user], resolved[user], ts):
                points += 1
                labels[d.label] += 1
        if user not in anchor or ts > anchor[user]:
            anchor[user] = ts
            resolved[user] = 0
            reschedule(user)
    return {
        "sweeps": sweeps, "examples": points, "churned": labels[1],
        "seconds": round(time.perf_counter() - started, 2),
    }


def daily_cost(path: Path, horizon_days: float) -> dict[str, Any]:
    config = config_from_dict({"churn": {"horizon_days": horizon_days}})
    started = time.perf_counter()
    result = run_replay(path, config, progress=False, triggers=False)
    elapsed = time.perf_counter() - started
    churn = result.summary["churn"]["examples"]
    return {
        "sweeps": result.summary["sweeps"],
        "examples": churn["not_churned"] + churn["churned"],
        "churned": churn["churned"],
        "seconds": round(elapsed, 2),
    }


def per_user_costs(purchases: Sequence[Purchase], horizon_days: float) -> dict[str, Any]:
    """Lifetime state on CDNOW_sample: update and feature time, and its size as msgpack."""
    config = LifetimeConfig(horizon_days)
    rows = sorted(purchases, key=lambda r: (r.day, r.customer))
    stamps = [(r.day - date(1970, 1, 1)).days * MS_PER_DAY + i % 1000 for i, r in enumerate(rows)]
    states: dict[str, LifetimeState] = {}
    started = time.perf_counter()
    for r, ts in zip(rows, stamps, strict=True):
        observe(states.setdefault(r.customer, LifetimeState()), ts, r.amount, config)
    update_us = (time.perf_counter() - started) / len(rows) * 1e6
    now = stamps[-1] + MS_PER_DAY
    summaries = [summary_at(s, now) for s in states.values()]
    xs, txs, ages = ([x.frequency for x in summaries], [x.recency for x in summaries],
                   [x.age for x in summaries])
    params = PopulationParams(fit_bgnbd(xs, txs, ages).params, fit_mbgnbd(xs, txs, ages).params)
    started = time.perf_counter()
    for s in states.values():
        lifetime_features(s, now, config, params)
    features_us = (time.perf_counter() - started) / len(states) * 1e6
    sizes = sorted(len(msgspec.msgpack.encode(s)) for s in states.values())
    return {
        "observe_us_per_event": round(update_us, 2),
        "features_us_per_user": round(features_us, 1),
        "state_bytes": {"median": sizes[len(sizes) // 2], "p95": sizes[int(len(sizes) * 0.95)],
                        "max": sizes[-1]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=float, default=30.0, help="churn horizon, days")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=float, default=35.0)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    cdnow = write_events(CACHE / "cdnow-sample-events.jsonl.gz", cdnow_events(load_cdnow()))
    simulated, _truth = generate(users=args.users, days=args.days, seed=args.seed, mix=SPARSE_MIX)
    sparse = write_events(
        CACHE / f"sparse-sessions-u{args.users}-d{args.days:g}-s{args.seed}.jsonl.gz",
        (e for e in simulated if e["type"] == "session_start"),
    )
    report = {}
    for name, path in (("cdnow_sample", cdnow), ("synthetic_sparse", sparse)):
        stream = read_stream(path)
        users = len({u for _, u in stream})
        active_days = len({(u, ts // MS_PER_DAY) for ts, u in stream})
        report[name] = {
            "events": len(stream), "users": users, "active_user_days": active_days,
            "span_days": round((stream[-1][0] - stream[0][0]) / MS_PER_DAY, 1),
            "daily_design_engine": daily_cost(path, args.horizon),
            "log_scale_design": log_scale_cost(stream, args.horizon),
        }
    report["lifetime_state_cdnow_sample"] = per_user_costs(load_cdnow(), args.horizon)
    print(json.dumps({"horizon_days": args.horizon, **report}, indent=2))


if __name__ == "__main__":
    main()
