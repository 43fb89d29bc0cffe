"""The engine as the worker runs it: churn hooks and trigger rules wired to metrics."""

from __future__ import annotations

from collections.abc import Callable

from scoring.config import EngageConfig
from scoring.engine import ScoringEngine
from scoring.hooks import ChurnHooks
from scoring.triggers.rules import TriggerRules
from sinks.metrics import Metrics


def build_engine(
    config: EngageConfig,
    *,
    churn: ChurnHooks | None,
    metrics: Metrics,
    clock_ms: Callable[[], int] | None = None,
) -> ScoringEngine:
    def suppressed(trigger_type: str, reason: str) -> None:
        metrics.triggers_suppressed.labels(trigger_type, reason).inc()

    rules = TriggerRules(config, clock_ms=clock_ms, on_suppressed=suppressed)
    return ScoringEngine(config, churn=churn, triggers=rules)
