"""Where a user stands in the population: percentiles per dimension and the calibrated score.

With `scoring.calibration = "population"` the engagement score is a percentile: a user's
five dimensions are each placed against the population reference (a mid-rank percentile),
combined with the composite weights, and that combination is placed again against the
population's own combinations:

    p_d   = mid-rank of the user's dimension d among active users        (0..1)
    c     = sum_d share_d * p_d                                           (0..1)
    score = 100 * mid-rank of c among active users' c                    (0..100)

So a score of 90 means "more engaged than 90 % of the users active in the last 28 days",
on any population, and a tier defined as the top 5 % is the score line 95. Until the
reference holds `population.min_users` users (a new deployment's first days) the score is
the absolute one. With `"absolute"` the score is always the saturating composite of
scoring.dimensions; percentiles are still reported while the reference is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scoring.config import EngageConfig
from scoring.dimensions import DimensionModel
from scoring.histogram import ZERO_KEY, LogBins, Ranked
from scoring.population_reference import COMPOSITE, Reference

COMPOSITE_BINS = 10_000  # the combination c is filed to 1/10,000


class Placement:
    """One user's standing against one reference."""

    __slots__ = ("composite_key", "percentiles", "population_score")

    def __init__(
        self, percentiles: list[float | None], composite_key: int | None,
        population_score: float | None,
    ) -> None:
        self.percentiles = percentiles  # per dimension, 0..1 (None: no reference yet)
        self.composite_key = composite_key  # the user's c, filed (None: not placeable)
        self.population_score = population_score  # 0..100, None below min_users


NOT_PLACED = Placement([None] * COMPOSITE, None, None)


class Calibration:
    def __init__(self, config: EngageConfig, dimensions: DimensionModel) -> None:
        p = config.scoring.population
        self.population_mode = config.scoring.calibration == "population"
        self.tracking = p.enabled
        self.min_users = p.min_users
        self.bins = LogBins(p.relative_accuracy)
        self.width = self.bins.width
        self.inverse_half_life = [1.0 / h for h in dimensions.half_life_ms]
        self.shares = dimensions.share
        self.top_shares = [lv.top_share for lv in config.tiers.levels]

    def dimension_keys(
        self, dims: Sequence[float], ref_ms: int, known: Sequence[int] = (),
        changed: Sequence[int] | None = None,
    ) -> list[int]:
        """Each dimension's bin after normalising its decay: log2(x) + ref / half-life.

        Decay leaves that value unchanged, so with the user's `known` keys only the
        dimensions an event `changed` are computed again (None: all)."""
        if not dims:
            return [ZERO_KEY] * COMPOSITE
        width, log2, floor, inverse = self.width, math.log2, math.floor, self.inverse_half_life
        if changed is not None and len(known) >= COMPOSITE:
            keys = list(known[:COMPOSITE])
            for i in changed:
                x = dims[i]
                keys[i] = floor((log2(x) + ref_ms * inverse[i]) / width) if x > 0.0 else ZERO_KEY
            return keys
        return [
            floor((log2(x) + ref_ms * inv) / width) if x > 0.0 else ZERO_KEY
            for x, inv in zip(dims, inverse, strict=True)
        ]

    def place(self, keys: Sequence[int], reference: Reference) -> Placement:
        ranked = reference.ranked
        if not ranked[0].total:
            return NOT_PLACED
        percentiles = list(map(Ranked.percentile, ranked[:COMPOSITE], keys))
        c = 0.0
        for share, pct in zip(self.shares, percentiles, strict=True):
            c += share * (pct or 0.0)
        composite_key = min(COMPOSITE_BINS, int(c * COMPOSITE_BINS))
        composite = ranked[COMPOSITE]
        score = None
        if composite.total >= self.min_users and reference.users >= self.min_users:
            mid = composite.percentile(composite_key)
            score = None if mid is None else 100.0 * mid
        return Placement(percentiles, composite_key, score)

    def tier_lines(self, reference: Reference) -> list[float]:
        """Each tier's line on the population score for the day of `reference`, such that
        the tier holds its `top_share` of active users.

        Hysteresis keeps some users in a tier their score no longer earns, so a line at
        `100 * (1 - top_share)` would let the tier grow past its share. Instead each line
        admits only as many newcomers as the tier lacks: among the users not holding the
        tier (or a higher one), those of the highest combined percentile, up to
        `top_share * users - holders`. A full tier's line is 100: nobody is promoted until
        demotions free a place. Demotions are judged against the same line less
        `tiers.demotion_margin`. Computed from the reference alone, so every partition,
        worker and replay draws the same lines on the same day."""
        if reference.lines is not None:
            return reference.lines
        composite = reference.ranked[COMPOSITE]
        users = composite.total
        lines = [0.0]
        for tier, share in enumerate(self.top_shares[1:], start=1):
            line = 100.0
            holders = sum(sum(c.values()) for r, c in reference.by_tier.items() if r >= tier)
            wanted = (share or 0.0) * users - holders
            if wanted > 0:
                others = Ranked.merged(c for r, c in reference.by_tier.items() if r < tier)
                if wanted >= others.total:
                    line = 0.0
                else:
                    key = others.quantile_key(1.0 - wanted / others.total)
                    at = None if key is None else composite.percentile(key)
                    line = 100.0 if at is None else round(100.0 * at, 6)
            lines.append(max(line, lines[-1]))
        reference.lines = lines
        return lines

    def value_at(self, key: int, dimension: int, now_ms: int) -> float:
        """The dimension value a bin stands for, decayed to `now_ms` (for explanations)."""
        if key == ZERO_KEY:
            return 0.0
        return float(2.0 ** (self.bins.log2_of(key) - now_ms * self.inverse_half_life[dimension]))
