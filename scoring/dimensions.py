"""Exponentially decayed dimension sums in event time, and the 0-100 composite score.

Each dimension holds sum(w_i * 2^-((t_ref - t_i) / half_life)) at a reference time t_ref
(the user's latest event). Adding an event older than t_ref discounts its weight instead of
decaying the sum, so the result does not depend on arrival order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scoring.config import DIMENSIONS, EngageConfig


class DimensionModel:
    """Weights, half-lives and the composite transform, precomputed from the config."""

    def __init__(self, config: EngageConfig) -> None:
        self.names = DIMENSIONS
        self.half_life_ms = [config.half_life_ms(d) for d in DIMENSIONS]
        dims = config.scoring.dimensions
        self.composite_weight = [dims[d].composite_weight if d in dims else 1.0 for d in DIMENSIONS]
        self.saturation = [dims[d].saturation if d in dims else 10.0 for d in DIMENSIONS]
        total = sum(self.composite_weight) or 1.0
        self.share = [w / total for w in self.composite_weight]
        self._terms = [
            (i, 100.0 * share, -1.0 / sat)
            for i, (share, sat) in enumerate(zip(self.share, self.saturation, strict=True))
            if share > 0
        ]
        # per event type: (weights vector, amount-weights vector or None)
        self.contributions: dict[str, tuple[list[float], list[float] | None]] = {}
        for etype, spec in config.event_types.items():
            w = [spec.weights.get(d, 0.0) for d in DIMENSIONS]
            a = (
                [spec.amount_weights.get(d, 0.0) for d in DIMENSIONS]
                if spec.amount_weights
                else None
            )
            self.contributions[etype] = (w, a)

    def add(
        self, dims: list[float], ref_ms: int, event_type: str, ts_ms: int, amount: float
    ) -> int:
        """Add one event to `dims` (in place); returns the new reference time."""
        weights, amount_weights = self.contributions[event_type]
        delta = weights
        if amount_weights is not None and amount:
            delta = [w + a * amount for w, a in zip(weights, amount_weights, strict=True)]
        if not dims:
            dims.extend(delta)
            return ts_ms
        hl = self.half_life_ms
        if ts_ms >= ref_ms:
            dt = ts_ms - ref_ms
            for i in range(len(dims)):
                dims[i] = dims[i] * 2.0 ** (-dt / hl[i]) + delta[i] if dt else dims[i] + delta[i]
            return ts_ms
        dt = ref_ms - ts_ms
        for i in range(len(dims)):
            if delta[i]:
                dims[i] += delta[i] * 2.0 ** (-dt / hl[i])
        return ref_ms

    def at(self, dims: Sequence[float], ref_ms: int, now_ms: int) -> list[float]:
        """The dimensions decayed to `now_ms` (never grown: `now_ms` before ref is ref)."""
        if not dims:
            return [0.0] * len(self.names)
        dt = max(0, now_ms - ref_ms)
        if dt == 0:
            return list(dims)
        return [v * 2.0 ** (-dt / hl) for v, hl in zip(dims, self.half_life_ms, strict=True)]

    def composite(self, values: Sequence[float]) -> float:
        """100 * sum(share_d * (1 - exp(-max(0, x_d) / saturation_d))), in [0, 100]."""
        total = 0.0
        exp = math.exp
        for i, share, neg_inv_sat in self._terms:
            v = values[i]
            if v > 0.0:
                total += share * (1.0 - exp(v * neg_inv_sat))
        return 100.0 if total > 100.0 else total
