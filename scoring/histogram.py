"""Population histograms: integer counts in log-spaced bins, exactly mergeable and removable.

A value is placed by the base-2 logarithm of its magnitude into bins of relative width
`2a / (1 - a)` (`a` = relative accuracy, 1 % by default): the bin layout DDSketch uses, so
any quantile read back is within `a` of a true value of the population. Values at or below
0 share one bin below every other (`ZERO_KEY`).

Why not DDSketch's own objects (the project used them for a per-partition sketch before):
the population reference needs three things they do not give. Counts must be *removed*
exactly (a user's previous value leaves when the new one enters, so each user counts once);
merges must be exact and independent of their order (integer counts, so every worker and
replay build the same reference); and the input is already a logarithm (decayed values are
compared after normalising their decay, which grows as `2^(t / half-life)` and would
overflow a float after a few years of a 7-day half-life). What remains is a dict of counts.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate

ZERO_KEY = -(1 << 62)  # the bin of every value <= 0: below every other


class LogBins:
    """Bin keys from base-2 logarithms, and the logarithm a key stands for."""

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative accuracy must be between 0 and 1")
        a = relative_accuracy
        gamma = (1 + a) / (1 - a)
        self.width = math.log2(gamma)
        # DDSketch's estimate of a bin [g^k, g^(k+1)): 2 g^(k+1) / (g + 1), within `a` of all
        self._offset = self.width + math.log2(2 / (gamma + 1))

    def key(self, log2_value: float) -> int:
        return math.floor(log2_value / self.width)

    def log2_of(self, key: int) -> float:
        """The value a key's bin stands for (within the relative accuracy of every value in
        it), as a base-2 logarithm."""
        return key * self.width + self._offset


def add_counts(into: dict[int, int], counts: Mapping[int, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


class Ranked:
    """A frozen histogram, ready for mid-rank percentiles and quantiles (both O(log n))."""

    __slots__ = ("_memo", "cumulative", "keys", "total")

    def __init__(self, counts: Mapping[int, int]) -> None:
        self.keys = sorted(k for k, n in counts.items() if n > 0)
        self.cumulative = list(accumulate(counts[k] for k in self.keys))
        self.total = self.cumulative[-1] if self.cumulative else 0
        self._memo: dict[int, float] = {}  # key -> percentile: most users ask again daily

    @classmethod
    def merged(cls, parts: Iterable[Mapping[int, int]]) -> Ranked:
        total: dict[int, int] = {}
        for part in parts:
            add_counts(total, part)
        return cls(total)

    def percentile(self, key: int) -> float | None:
        """The mid-rank of `key`: (values below + half the values in its bin) / all, in
        [0, 1]; None for an empty histogram. Ties share the middle of their ranks, so a
        population's percentiles average 0.5 and the top 5 % of users sit above 0.95."""
        known = self._memo.get(key)
        if known is not None:
            return known
        if not self.total:
            return None
        keys, cumulative = self.keys, self.cumulative
        i = bisect_left(keys, key)
        below = cumulative[i - 1] if i else 0
        same = cumulative[i] - below if i < len(keys) and keys[i] == key else 0
        found = self._memo[key] = (below + same / 2) / self.total
        return found

    def quantile_key(self, rank: float) -> int | None:
        """The key of the bin holding the value of rank `rank` (0..1), None when empty."""
        if not self.total:
            return None
        target = min(max(rank, 0.0), 1.0) * self.total
        i = bisect_left(self.cumulative, target)  # the first bin reaching the rank
        return self.keys[min(i, len(self.keys) - 1)]
