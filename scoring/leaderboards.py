"""Leaderboards by period and measure, cluster-wide (an engine extension).

Points are what a user's events earned, undecayed: each event adds its configured weights
(and amount weights) to each dimension, negative contributions counted as zero, so points
only grow within a period. A user's points are kept for the current UTC week (Monday to
Sunday), month and all time. Each partition keeps the top `leaderboards.size` users of
every (period, measure) — measure `composite` (all dimensions, weighted as in the composite
score) or one dimension — in its persisted state; the worker publishes them to the
compacted topic `engagement.leaderboards` and every worker merges all partitions' boards to
answer `/leaderboards/` (`merge_boards`). Periods follow each partition's event time; a
merged board shows the newest period any partition has reached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from operator import mul
from typing import ClassVar

from scoring.config import DIMENSIONS, EngageConfig
from scoring.dimensions import DimensionModel
from scoring.extensions import Extension, Moment
from scoring.timeutil import MS_PER_DAY

PERIODS = ("week", "month", "all")
MEASURES = ("composite", *DIMENSIONS)


def week_of(ms: int) -> int:
    return (ms // MS_PER_DAY + 3) // 7  # 1970-01-01 was a Thursday


_MONTHS: dict[int, int] = {}  # UTC day -> month id (a pure function, memoised)


def month_of(ms: int) -> int:
    day = ms // MS_PER_DAY
    month = _MONTHS.get(day)
    if month is None:
        if len(_MONTHS) >= 4096:
            _MONTHS.clear()
        d = dt.datetime.fromtimestamp(day * 86_400, tz=dt.UTC)
        month = _MONTHS[day] = d.year * 12 + d.month - 1
    return month


def period_label(period: str, pid: int) -> str:
    if period == "week":
        monday = dt.date(1970, 1, 1) + dt.timedelta(days=pid * 7 - 3)
        return monday.isoformat()
    if period == "month":
        return f"{pid // 12:04d}-{pid % 12 + 1:02d}"
    return "all"


class Leaderboards(Extension):
    name: ClassVar[str] = "leaderboards"

    def __init__(self, config: EngageConfig) -> None:
        super().__init__(config)
        self.c = config.leaderboards
        self.model = DimensionModel(config)
        total = sum(self.model.composite_weight) or 1.0
        self.composite_share = [w / total for w in self.model.composite_weight]
        self._last_keys: tuple[int, int, tuple[list[str], list[str], list[str]]] = (
            -1, -1, ([], [], []))
        # event type -> (points earned, measures moved), for types without amount weights
        self._fixed: dict[str, tuple[list[float], list[int]]] = {}

    def on_event(self, m: Moment) -> None:
        if not self.c.enabled:
            return
        event = m.event
        assert event is not None
        fixed = self._fixed.get(event.type)
        if fixed is None:
            weights, amount_weights = self.model.contributions[event.type]
            if amount_weights is not None:
                earned = [max(0.0, w + a * event.amount)
                          for w, a in zip(weights, amount_weights, strict=True)]
                moved = [i for i, x in enumerate(earned) if x > 0]
            else:  # the same for every event of the type: computed once
                earned = [max(0.0, w + 0.0) for w in weights]
                moved = [i for i, x in enumerate(earned) if x > 0]
                self._fixed[event.type] = (earned, moved)
        else:
            earned, moved = fixed
        if not moved:  # nothing earned (earned points are never negative)
            return
        p = m.state.periods
        now = m.now_ms
        week, month = week_of(now), month_of(now)
        if week != p.week:
            if week < p.week:
                return  # a late event from a week already closed here: all time only
            p.week, p.week_points = week, [0.0] * len(earned)
        if month != p.month:
            p.month, p.month_points = month, [0.0] * len(earned)
        p.week_points = _add(p.week_points, earned, moved)
        p.month_points = _add(p.month_points, earned, moved)
        p.all_points = _add(p.all_points, earned, moved)
        # other measures did not move; values are rounded when the boards are placed
        share = self.composite_share
        week_keys, month_keys, all_keys = self._period_keys(week, month)
        offers = []
        for keys, points in ((week_keys, p.week_points), (month_keys, p.month_points),
                             (all_keys, p.all_points)):
            offers.append((keys[0], sum(map(mul, share, points))))
            for i in moved:  # one or two: a loop is cheaper than a comprehension
                offers.append((keys[i + 1], points[i]))
        m.shared.rank_all(m.user_id, offers, self.c.size)

    def _period_keys(self, week: int, month: int) -> tuple[list[str], list[str], list[str]]:
        """The board keys of the week, the month and all time (the same for every event
        until a period turns: kept for the latest pair)."""
        last = self._last_keys
        if last[0] != week or last[1] != month:
            last = self._last_keys = (week, month, (_board_keys("week", week),
                                                    _board_keys("month", month),
                                                    _board_keys("all", 0)))
        return last[2]


def _board_keys(period: str, pid: int) -> list[str]:
    """The board keys of a period, composite first, then each dimension."""
    return [f"{period}:{pid}:{x}" for x in MEASURES]


def _add(points: list[float], earned: Sequence[float], moved: Sequence[int]) -> list[float]:
    """`points` + `earned` (in place: only the `moved` measures earned anything)."""
    if not points:
        return list(earned)
    for i in moved:
        points[i] += earned[i]
    return points


def merge_boards(
    boards: Iterable[Mapping[str, Sequence[Sequence[float | str]]]],
    period: str,
    measure: str,
    n: int,
) -> tuple[str, list[tuple[str, float]]]:
    """The cluster's top `n` from every partition's boards: (period label, [(user, value)]).
    The newest period any partition reached wins; ties are broken by user id."""
    chosen: dict[int, list[tuple[str, float]]] = {}
    for board in boards:
        for key, entries in board.items():
            kind, pid, what = key.split(":", 2)
            if kind == period and what == measure:
                chosen.setdefault(int(pid), []).extend((str(u), float(v)) for v, u in entries)
    if not chosen:
        return (period_label(period, 0) if period == "all" else ""), []
    newest = max(chosen)
    ranked = sorted(chosen[newest], key=lambda e: (-e[1], e[0]))[:n]
    return period_label(period, newest), ranked
