"""Measured uplift of a trigger type: do users picked for a trigger and sent it (treatment)
reach an outcome more often than users picked by the same rule and held out (control)?

Intent to treat: each user counts once per trigger type, in the group their *first* trigger
of that type assigned, whether or not the message was delivered or seen, and their outcome
window starts at that trigger's event time. A user whose window is not fully observed —
it ends after the last event seen, or starts before the first (a topic whose older records
have expired) — is *censored* (left out), since a partial window would bias the rate down.

The difference of rates gets Newcombe's hybrid score interval (Wilson intervals of each
group combined; it stays inside [-1, 1] and behaves at rates of 0 or 1, where the simple
Wald interval collapses) and the p-value of the pooled two-proportion z-test. Pure: the
shell reads the triggers and events and feeds them here.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from scoring.timeutil import MS_PER_DAY
from scoring.trigger_records import TriggerRecord, type_rank

TREATMENT, CONTROL = "treatment", "control"
RETURNED = "returned"  # the outcome "any valid event"; other outcomes are event types
CONFIDENCE = 0.95
MIN_EXPECTED = 5  # below this expected count in a cell the normal approximation is rough


@dataclass(frozen=True)
class Assignment:
    """The group a user is in for one trigger type, and when it was decided."""

    variant: str
    at_ms: int
    trigger_id: str


def first_assignments(triggers: Iterable[TriggerRecord]) -> dict[str, dict[str, Assignment]]:
    """trigger type -> user -> the user's first trigger of that type (ties: by trigger_id).

    Later triggers of the type, and duplicates of the same trigger, change nothing."""
    by_type: dict[str, dict[str, Assignment]] = {}
    for t in triggers:
        users = by_type.setdefault(t.type, {})
        current = users.get(t.user_id)
        if current is None or (t.at_ms, t.trigger_id) < (current.at_ms, current.trigger_id):
            users[t.user_id] = Assignment(t.variant, t.at_ms, t.trigger_id)
    return by_type


class OutcomeLog:
    """When the users under study reached each outcome, and which span events cover.

    Feed every valid event (`add`); only the watched users' outcome events are kept."""

    def __init__(self, outcomes: Sequence[str], users: Collection[str]) -> None:
        self._watched = frozenset(users)
        self._times: dict[str, dict[str, list[int]]] = {o: {} for o in outcomes}
        self._by_event_type = {o: self._times[o] for o in outcomes if o != RETURNED}
        self._returned = self._times.get(RETURNED)
        self._sorted = False
        self.observed_from_ms: int | None = None
        self.observed_until_ms: int | None = None

    def add(self, user_id: str, event_type: str, ts_ms: int) -> None:
        if self.observed_until_ms is None or ts_ms > self.observed_until_ms:
            self.observed_until_ms = ts_ms
        if self.observed_from_ms is None or ts_ms < self.observed_from_ms:
            self.observed_from_ms = ts_ms
        if user_id not in self._watched:
            return
        self._sorted = False
        if self._returned is not None:
            self._returned.setdefault(user_id, []).append(ts_ms)
        times = self._by_event_type.get(event_type)
        if times is not None:
            times.setdefault(user_id, []).append(ts_ms)

    def reached(self, outcome: str, user_id: str, after_ms: int, until_ms: int) -> bool:
        """Whether the user had an outcome event in (after_ms, until_ms]."""
        if not self._sorted:
            for per_user in self._times.values():
                for times in per_user.values():
                    times.sort()
            self._sorted = True
        times = self._times[outcome].get(user_id, [])
        i = bisect_right(times, after_ms)
        return i < len(times) and times[i] <= until_ms


@dataclass(frozen=True)
class Arm:
    users: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.users if self.users else None

    def to_json(self) -> dict[str, Any]:
        return {"users": self.users, "converted": self.converted, "rate": self.rate}


@dataclass(frozen=True)
class Comparison:
    """treatment rate - control rate, its confidence interval and two-sided p-value; all
    None when a group is empty. `small_sample`: an expected cell count of the 2x2 table is
    below 5, where the normal approximation is rough."""

    uplift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    small_sample: bool | None


def wilson_interval(converted: int, users: int, z: float) -> tuple[float, float]:
    """Wilson score interval of one proportion (no continuity correction)."""
    p = converted / users
    denominator = 1 + z * z / users
    centre = (p + z * z / (2 * users)) / denominator
    half = z * math.sqrt(p * (1 - p) / users + z * z / (4 * users * users)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def compare(treatment: Arm, control: Arm, confidence: float = CONFIDENCE) -> Comparison:
    """Newcombe's hybrid score interval for the difference and the pooled z-test p-value."""
    n1, n2 = treatment.users, control.users
    if not n1 or not n2:
        return Comparison(None, None, None, None, small_sample=None)
    x1, x2 = treatment.converted, control.converted
    p1, p2 = x1 / n1, x2 / n2
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    low1, high1 = wilson_interval(x1, n1, z)
    low2, high2 = wilson_interval(x2, n2, z)
    uplift = p1 - p2
    ci_low = uplift - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2)
    ci_high = uplift + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = math.erfc(abs(uplift) / se / math.sqrt(2)) if se > 0 else 1.0
    expected = min(n * q for n in (n1, n2) for q in (pooled, 1 - pooled))
    return Comparison(uplift, ci_low, ci_high, p_value, small_sample=expected < MIN_EXPECTED)


@dataclass(frozen=True)
class UpliftRow:
    """One trigger type and outcome: both groups, the comparison, users left out."""

    type: str
    outcome: str
    window_days: float
    treatment: Arm
    control: Arm
    censored: int
    comparison: Comparison

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "type": self.type, "outcome": self.outcome, "window_days": self.window_days,
            "treatment": self.treatment.to_json(), "control": self.control.to_json(),
            "uplift": c.uplift, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
            "confidence": CONFIDENCE, "small_sample": c.small_sample,
            "censored_users": self.censored,
        }


def measure_uplift(
    assignments: Mapping[str, Mapping[str, Assignment]],
    log: OutcomeLog,
    outcome: str,
    window_days: float,
) -> list[UpliftRow]:
    """One row per trigger type (in the registry's order) for `outcome` within the window."""
    window_ms = round(window_days * MS_PER_DAY)
    start, end = log.observed_from_ms, log.observed_until_ms
    rows = []
    for trigger_type in sorted(assignments, key=type_rank):
        users = {TREATMENT: 0, CONTROL: 0}
        converted = {TREATMENT: 0, CONTROL: 0}
        censored = 0
        for user_id, a in assignments[trigger_type].items():
            until = a.at_ms + window_ms
            if start is None or end is None or a.at_ms < start or until > end:
                censored += 1
                continue
            users[a.variant] += 1
            converted[a.variant] += log.reached(outcome, user_id, a.at_ms, until)
        treatment = Arm(users[TREATMENT], converted[TREATMENT])
        control = Arm(users[CONTROL], converted[CONTROL])
        rows.append(UpliftRow(trigger_type, outcome, window_days, treatment, control, censored,
                              compare(treatment, control)))
    return rows
