"""The engine as every shell runs it: the worker, `engage replay` and the benchmarks build
it here, so an offline replay and the live stream score with the same parts."""

from __future__ import annotations

from collections.abc import Callable

from scoring.config import EngageConfig
from scoring.engine import ScoringEngine
from scoring.hooks import ChurnHooks
from scoring.triggers.admission import TriggerRules


def build_engine(
    config: EngageConfig,
    *,
    churn: ChurnHooks | None,
    on_suppressed: Callable[[str, str], None] | None = None,
    triggers: bool = True,
) -> ScoringEngine:
    rules = TriggerRules(config, on_suppressed=on_suppressed) if triggers else None
    return ScoringEngine(config, churn=churn, triggers=rules)
