"""How the uplift statistics of `engage uplift` behave, by simulation (the figures quoted in
docs/growth.md).

1. Peeking: an A/A test (both groups convert at the same rate) looked at after every
   `--per-look` users per group; the share of runs that show p < 0.05 at *some* look.
   One look should give about 5%; every extra look adds false alarms.
2. Coverage: how often the 95% interval (Newcombe hybrid score) contains the true uplift,
   for small and larger groups, next to the normal-approximation ("Wald") interval.

    python -m benchmarks.bench_uplift [--runs 20000] [--seed 14]
"""

from __future__ import annotations

import argparse
import math
import random

from scoring.uplift import Arm, compare

Z95 = 1.959963984540054


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


def false_alarms(rng: random.Random, runs: int, looks: int, per_look: int, rate: float) -> float:
    alarms = 0
    for _ in range(runs):
        a = b = 0
        for k in range(1, looks + 1):
            a += _binomial(rng, per_look, rate)
            b += _binomial(rng, per_look, rate)
            p = compare(Arm(k * per_look, a), Arm(k * per_look, b)).p_value
            if p is not None and p < 0.05:
                alarms += 1
                break
    return alarms / runs


def coverage(rng: random.Random, runs: int, n: int, p1: float, p2: float) -> tuple[float, float]:
    """(Newcombe, Wald) share of runs whose interval holds the true p1 - p2."""
    newcombe = wald = 0
    for _ in range(runs):
        x1, x2 = _binomial(rng, n, p1), _binomial(rng, n, p2)
        c = compare(Arm(n, x1), Arm(n, x2))
        assert c.ci_low is not None and c.ci_high is not None
        newcombe += c.ci_low <= p1 - p2 <= c.ci_high
        q1, q2 = x1 / n, x2 / n
        half = Z95 * math.sqrt(q1 * (1 - q1) / n + q2 * (1 - q2) / n)
        wald += q1 - q2 - half <= p1 - p2 <= q1 - q2 + half
    return newcombe / runs, wald / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--per-look", type=int, default=100)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"A/A test, 30% conversion in both groups, +{args.per_look} users per group per "
          f"look, {args.runs} runs:")
    print("looks  runs with p < 0.05 at some look")
    for looks in (1, 5, 10, 20):
        print(f"{looks:>5}  {100 * false_alarms(rng, args.runs, looks, args.per_look, 0.3):.1f}%")
    print(f"\ncoverage of the 95% interval, treatment 40% vs control 30%, {args.runs} runs:")
    print("users per group  Newcombe  Wald")
    for n in (10, 30, 100, 1000):
        newcombe, wald = coverage(rng, args.runs, n, 0.4, 0.3)
        print(f"{n:>15}  {100 * newcombe:7.1f}%  {100 * wald:4.1f}%")


if __name__ == "__main__":
    main()
