"""BG/NBD's population parameters, refitted from a bounded sample of customers' summaries.

BG/NBD needs one summary per customer — frequency x, recency t_x, age T — at a common moment.
The trainer sees each customer again and again: every resolved example carries the user's
summary (first and last return day, repeat days), and every customer resolves a point within
a horizon and a day of each return. It keeps the customers with the `size` smallest hashes of
their id (a bottom-k sample: uniform, the same whatever the order examples arrive in, O(size)
memory however many customers there are), the newest summary of each, and fits when asked,
with T counted to the moment of the fit. The sample is small enough to travel in the trainer's
artifacts, so a restarted trainer continues with it.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import struct

from scoring.churn.bgnbd import fit_bgnbd
from scoring.churn.mbgnbd import fit_mbgnbd
from scoring.churn.priors import PopulationParams
from scoring.records import CustomerSummary
from scoring.timeutil import MS_PER_DAY

MIN_REPEATERS_TO_FIT = 30  # fewer repeat customers give unstable parameters
_ROW = struct.Struct(">Qiii")  # hash, first_day, last_day, repeat_days


def customer_hash(user_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big")


class CustomerSample:
    """The customers with the smallest id hashes, and each one's newest summary."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.rows: dict[int, tuple[int, int, int]] = {}  # hash -> (first_day, last_day, x)
        self._largest: list[int] = []  # max-heap (negated hashes) of the sampled hashes

    def __len__(self) -> int:
        return len(self.rows)

    def update(self, user_id: str, summary: CustomerSummary | dict[str, int]) -> None:
        if isinstance(summary, dict):
            row = (int(summary["first_day"]), int(summary["last_day"]),
                   int(summary["repeat_days"]))
        else:
            row = (summary.first_day, summary.last_day, summary.repeat_days)
        h = customer_hash(user_id)
        known = self.rows.get(h)
        if known is not None:
            # summaries only grow (first day down, last day and x up); an example resolved
            # late may carry an older one
            self.rows[h] = (min(row[0], known[0]), max(row[1], known[1]), max(row[2], known[2]))
            return
        if len(self.rows) >= self.size:
            if h > -self._largest[0]:
                return
            del self.rows[-heapq.heappop(self._largest)]
        self.rows[h] = row
        heapq.heappush(self._largest, -h)

    def fit(
        self, now_ms: int, initial: PopulationParams | None = None
    ) -> PopulationParams | None:
        """Maximum-likelihood BG/NBD and MBG/NBD parameters (days) at `now_ms`; None with too
        few repeaters."""
        if sum(1 for _, _, x in self.rows.values() if x > 0) < MIN_REPEATERS_TO_FIT:
            return None
        now_days = now_ms / MS_PER_DAY
        xs, recency, age = [], [], []
        for first, last, x in self.rows.values():
            t_x = float(last - first) if x else 0.0
            xs.append(x)
            recency.append(t_x)
            age.append(max(now_days - first, t_x))
        # from the default start and, if given, from the last parameters; the better fit wins:
        # a warm start alone can stay in a degenerate optimum found on a young population
        # (no dropout, r and alpha ~1e6; seen on CDNOW)
        try:
            fits = [fit_bgnbd(xs, recency, age)]
            if initial is not None:
                fits.append(fit_bgnbd(xs, recency, age, initial=initial.bgnbd))
        except ValueError:
            return None
        bgnbd = max(fits, key=lambda f: f.log_likelihood).params
        try:
            mfits = [fit_mbgnbd(xs, recency, age)]
            if initial is not None and initial.mbgnbd is not None:
                mfits.append(fit_mbgnbd(xs, recency, age, initial=initial.mbgnbd))
        except ValueError:
            return PopulationParams(bgnbd, initial.mbgnbd if initial is not None else None)
        return PopulationParams(bgnbd, max(mfits, key=lambda f: f.log_likelihood).params)

    def encode(self) -> str:
        """The sample as base64 (20 bytes a customer), for the trainer's artifacts."""
        packed = b"".join(_ROW.pack(h, *row) for h, row in self.rows.items())
        return base64.b64encode(packed).decode("ascii")

    @classmethod
    def decode(cls, text: str, size: int) -> CustomerSample:
        sample = cls(size)
        raw = base64.b64decode(text)
        rows = sorted(_ROW.iter_unpack(raw[: len(raw) // _ROW.size * _ROW.size]))[:size]
        for h, first, last, x in rows:
            sample.rows[h] = (first, last, x)
            heapq.heappush(sample._largest, -h)
        return sample
