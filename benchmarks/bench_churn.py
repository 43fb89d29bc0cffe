"""Churn model vs a recency baseline on simulated traffic with ground truth.

Replays simulated events up to a cut-off (the online models learn from the labels resolved
by then), then ranks the users seen in the last 2 horizons by `churn_probability` and, in the
same run, by days since their last event alone. Ground truth: the simulator's users who
stop for good within the horizon after the cut-off (or already have). Prints both ROC AUCs.

    python -m benchmarks.bench_churn [--users 1000] [--days 60] [--cutoff-day 45]
"""

from __future__ import annotations

import argparse
import json

from benchmarks.common import roc_auc, simulated_file
from scoring.config import config_from_dict
from scoring.timeutil import MS_PER_DAY, parse_rfc3339_ms
from simulator import DEFAULT_START_MS
from streams.replay import run_replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=float, default=60)
    parser.add_argument("--cutoff-day", type=float, default=45)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    path, truth = simulated_file(args.users, args.days, seed=args.seed)
    results = {}
    for model in ("logreg", "hoeffding", "forest"):
        config = config_from_dict({"churn": {"model": model}})
        horizon = int(config.churn.horizon_days * MS_PER_DAY)
        cutoff = DEFAULT_START_MS + int(args.cutoff_day * MS_PER_DAY)
        replay = run_replay(path, config, as_of=cutoff, progress=False, triggers=False)
        model_scores, recency, labels = [], [], []
        for t in truth:
            state = replay.states.get(t.user_id)
            if state is None or state.last_ms < cutoff - 2 * horizon:
                continue  # not seen, or long gone before the cut-off: no decision to make
            record = replay.engine.score_record(state, t.user_id, cutoff)
            churn_at = parse_rfc3339_ms(t.churn_at) if t.churn_at else None
            labels.append(bool(t.churned and churn_at is not None and churn_at <= cutoff + horizon))
            model_scores.append(record["churn_probability"] or 0.0)
            recency.append(record["days_since_last_event"])
        results[model] = {
            "users_ranked": len(labels),
            "churned_in_horizon": sum(labels),
            "roc_auc_model": round(roc_auc(model_scores, labels), 4),
            "roc_auc_recency_baseline": round(roc_auc(recency, labels), 4),
            "progressive": replay.summary["churn"]["champion"],
        }
        results[model]["model_minus_baseline"] = round(
            results[model]["roc_auc_model"] - results[model]["roc_auc_recency_baseline"], 4
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
