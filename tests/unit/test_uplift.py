"""The uplift statistics: Newcombe's published examples, scipy as an independent check, and
the intent-to-treat bookkeeping (first trigger decides, windows, censoring)."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest, chi2_contingency

from scoring.trigger_records import TriggerRecord
from scoring.uplift import (
    Arm,
    OutcomeLog,
    compare,
    first_assignments,
    measure_uplift,
    wilson_interval,
)
from tests.helpers import DAY, HOUR, T0


# Newcombe (1998), "Interval estimation for the difference between independent proportions",
# Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no continuity
# correction): (x1, n1, x2, n2) -> (lower, upper), to 4 decimals.
@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
        (10, 10, 0, 10, 0.6075, 1.0000),
    ],
)
def test_interval_matches_newcombes_published_examples(
    x1: int, n1: int, x2: int, n2: int, low: float, high: float
) -> None:
    c = compare(Arm(n1, x1), Arm(n2, x2))
    assert c.uplift == pytest.approx(x1 / n1 - x2 / n2)
    assert (round(c.ci_low or 0, 4), round(c.ci_high or 0, 4)) == (low, high)


@pytest.mark.parametrize(("k", "n"), [(0, 7), (1, 12), (37, 80), (199, 200), (250, 250)])
def test_wilson_interval_agrees_with_scipy(k: int, n: int) -> None:
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n, 1.959963984540054)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(56, 70, 48, 80), (30, 100, 28, 95), (5, 56, 1, 29), (400, 1000, 350, 1000)],
)
def test_p_value_is_the_pooled_two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> None:
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    chi2_p = chi2_contingency(table, correction=False).pvalue  # chi-square = z squared
    assert compare(Arm(n1, x1), Arm(n2, x2)).p_value == pytest.approx(chi2_p, rel=1e-9)


def test_edge_cases() -> None:
    empty = compare(Arm(10, 4), Arm(0, 0))
    assert (empty.uplift, empty.ci_low, empty.ci_high, empty.p_value, empty.small_sample) == (
        None, None, None, None, None)
    same = compare(Arm(20, 20), Arm(30, 30))  # nothing varies: no evidence of a difference
    assert (same.uplift, same.p_value, same.small_sample) == (0.0, 1.0, True)
    assert compare(Arm(100, 50), Arm(100, 3)).small_sample is False  # expected 26.5 and 73.5
    assert compare(Arm(100, 5), Arm(100, 3)).small_sample is True  # expected converted: 4
    assert Arm(0, 0).rate is None and Arm(8, 2).rate == 0.25


def _trigger(user: str, variant: str, at_ms: int, type_: str = "win_back",
             trigger_id: str | None = None) -> TriggerRecord:
    return TriggerRecord(trigger_id or f"{user}{type_}{at_ms}", type_, user, variant, at_ms,
                         "bronze")


def test_the_first_trigger_of_a_type_decides_the_group() -> None:
    assignments = first_assignments([
        _trigger("a", "treatment", T0 + 5 * DAY),
        _trigger("a", "control", T0 + DAY),  # earlier, though listed later: decides
        _trigger("a", "control", T0 + DAY),  # the same trigger again (a redelivery)
        _trigger("a", "treatment", T0, type_="milestone"),  # other types are separate
        _trigger("b", "treatment", T0, trigger_id="2"),
        _trigger("b", "control", T0, trigger_id="1"),  # same time: the smaller id decides
    ])
    assert {t: {u: (a.variant, a.at_ms) for u, a in users.items()}
            for t, users in assignments.items()} == {
        "win_back": {"a": ("control", T0 + DAY), "b": ("control", T0)},
        "milestone": {"a": ("treatment", T0)},
    }


def test_outcome_window_is_after_the_trigger_up_to_n_days_and_partial_ones_are_censored() -> None:
    triggers = [
        _trigger("at_trigger", "treatment", T0),  # its only event is the trigger's own moment
        _trigger("on_edge", "treatment", T0),  # returns exactly 7 days later: inside
        _trigger("too_late", "treatment", T0),  # returns 7 days and 1 ms later: outside
        _trigger("bought", "control", T0),  # returns and buys a day later
        _trigger("censored", "control", T0 + 20 * DAY),  # window ends after the last event
        _trigger("expired", "control", T0 - HOUR),  # window starts before the first event
    ]
    assignments = first_assignments(triggers)
    log = OutcomeLog(["returned", "purchase"], {t.user_id for t in triggers})
    log.add("at_trigger", "session_start", T0)
    log.add("on_edge", "view", T0 + 7 * DAY)
    log.add("too_late", "view", T0 + 7 * DAY + 1)
    log.add("bought", "purchase", T0 + DAY)
    log.add("censored", "view", T0 + 21 * DAY)
    log.add("someone_else", "view", T0 + 26 * DAY + HOUR)  # how far events were observed
    returned, = measure_uplift(assignments, log, "returned", 7)
    assert (returned.treatment, returned.control, returned.censored) == (
        Arm(3, 1), Arm(1, 1), 2)
    purchase, = measure_uplift(assignments, log, "purchase", 7)
    assert (purchase.treatment, purchase.control) == (Arm(3, 0), Arm(1, 1))
    assert purchase.comparison == compare(Arm(3, 0), Arm(1, 1))
