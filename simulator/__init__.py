"""Synthetic engagement traffic: personas, a deterministic population, ts-ordered events.

    events, truth = generate(users=1000, days=60, seed=7)

`events` streams event dicts (contract v1) in global timestamp order; `truth` holds one
`Truth` per user (persona, churned, churn_at ...) known from the plan up front.
"""

from simulator.population import Truth
from simulator.traffic import DEFAULT_START_MS, Simulation, generate, simulate

__all__ = ["DEFAULT_START_MS", "Simulation", "Truth", "generate", "simulate"]
