"""Population calibration on two populations ten times apart in activity, and what it costs.

Prints, in one run:

- for a casual-heavy and a core-heavy simulated population, under `calibration =
  "population"` and `"absolute"`: the share of each tier among users active in the last 28
  days (target: vip 5 %, gold 15 %, silver 30 %, bronze 50 %) and the 10th/50th/90th
  percentiles of their engagement scores;
- the cost of the shared population reference per event: replay throughput (decode, score,
  trigger rules; churn off) with population calibration, and with the reference switched
  off entirely (absolute scores, `scoring.population.enabled = false`, the ambassador rule
  off), runs interleaved in one invocation, medians; plus the state bytes per user.

    python -m benchmarks.bench_calibration [--users 600] [--days 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.common import CACHE, median, simulated_file, write_cached
from scoring.config import EngageConfig, config_from_dict
from scoring.state_codec import encode_state
from simulator import generate
from streams.replay import ReplayResult, run_replay

POPULATIONS = {
    "casual_heavy": {"casual": 0.95, "lapsing": 0.05},
    "core_heavy": {"core": 0.9, "returning": 0.1},
}
MODES: dict[str, dict[str, Any]] = {
    "population": {},
    "absolute": {"scoring": {"calibration": "absolute"}},
}
NO_REFERENCE: dict[str, Any] = {
    "scoring": {"calibration": "absolute", "population": {"enabled": False}},
    "triggers": {"ambassador_candidate": {"enabled": False}},
}
TIERS = ("bronze", "silver", "gold", "vip")


def population_file(name: str, users: int, days: float, seed: int) -> tuple[Path, int]:
    path = CACHE / f"calib-{name}-u{users}-d{days:g}-s{seed}.jsonl.gz"
    events, _ = generate(users=users, days=days, seed=seed, mix=POPULATIONS[name])
    write_cached(path, events)
    with gzip.open(path, "rt") as fh:
        return path, sum(1 for _ in fh)


def standing(result: ReplayResult) -> dict[str, Any]:
    records = [msgspec.to_builtins(result.score_record(u)) for u in result.states]
    active = [r for r in records if r["days_since_last_event"] <= 28]
    tiers = Counter(r["tier"] for r in active)
    scores = sorted(r["engagement_score"] for r in active)

    def pct(q: float) -> float:
        return round(scores[min(len(scores) - 1, int(q * len(scores)))], 1)

    return {
        "active_users": len(active),
        "tier_shares_percent": {t: round(100 * tiers[t] / len(active), 1) for t in TIERS},
        "score_p10_p50_p90": [pct(0.1), pct(0.5), pct(0.9)],
        "calibration": dict(Counter(r["calibration"] for r in records)),
    }


def throughput(path: Path, config: EngageConfig, events: int) -> tuple[float, int]:
    result = run_replay(path, config, progress=False, churn=False)
    sizes = sorted(len(encode_state(s)) for s in result.states.values())
    return events / result.summary["seconds"], sizes[len(sizes) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--days", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cost-users", type=int, default=1000)
    args = parser.parse_args()
    out: dict[str, Any] = {"populations": {}}
    for seed, name in enumerate(POPULATIONS, start=41):
        path, n = population_file(name, args.users, args.days, seed)
        row: dict[str, Any] = {"mix": POPULATIONS[name], "users": args.users,
                               "days": args.days, "events": n,
                               "events_per_user": round(n / args.users, 1)}
        for mode, rules in MODES.items():
            result = run_replay(path, config_from_dict(rules), progress=False, churn=False,
                                triggers=False)
            row[mode] = standing(result)
        out["populations"][name] = row
    path, _ = simulated_file(args.cost_users, args.days, seed=1)
    with gzip.open(path, "rt") as fh:
        n = sum(1 for _ in fh)
    with_ref, without, bytes_with, bytes_without = [], [], 0, 0
    calibrated, plain = config_from_dict({}), config_from_dict(NO_REFERENCE)
    for _ in range(args.runs):  # interleaved, so the machine's noise hits both alike
        eps, bytes_with = throughput(path, calibrated, n)
        with_ref.append(eps)
        eps, bytes_without = throughput(path, plain, n)
        without.append(eps)
    a, b = median(with_ref), median(without)
    out["cost"] = {
        "file": path.name, "events": n, "runs": args.runs,
        "replay_events_per_s_with_population_reference": round(a),
        "replay_events_per_s_without": round(b),
        "ratio_with_over_without": round(a / b, 3),
        "added_microseconds_per_event": round(1e6 / a - 1e6 / b, 2),
        "median_state_bytes_per_user": {"with": bytes_with, "without": bytes_without},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
