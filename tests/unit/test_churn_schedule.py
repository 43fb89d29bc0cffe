"""Observation points on a log scale of silence: placement, labels, sweeps."""

from __future__ import annotations

import pytest

from scoring.churn.schedule import ObservationSchedule
from scoring.timeutil import MS_PER_DAY

H = 30.0
ANCHOR = 1_000 * MS_PER_DAY + 12_345


def test_octaves_double_up_to_the_longest_silence() -> None:
    s = ObservationSchedule(H, max_silence_days=730.0)
    assert s.octave_bounds_days == (
        (0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0),
        (32.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, 730.0))
    assert s.octaves == 11


def test_points_are_deterministic_inside_their_octaves() -> None:
    s = ObservationSchedule(H)
    points = s.points("u1", ANCHOR)
    assert points == s.points("u1", ANCHOR)
    assert points != s.points("u1", ANCHOR + 1)
    assert points != s.points("u2", ANCHOR)
    for p, (low, high) in zip(points, s.octave_bounds_days, strict=True):
        assert low * MS_PER_DAY <= p.observed_ms - ANCHOR < high * MS_PER_DAY
        assert p.weight == high - low


def test_an_event_labels_every_point_it_follows() -> None:
    s = ObservationSchedule(H)
    points = s.points("u1", ANCHOR)
    h = s.horizon_ms
    # an event just after point 5 opened: points 0-4 are past their horizon unless recent
    event = points[5].observed_ms + 1
    done = s.on_event("u1", ANCHOR, 0, event)
    assert [d.point.octave for d in done] == [0, 1, 2, 3, 4, 5]
    for d in done:
        returned = event <= d.point.observed_ms + h
        assert d.label == (0 if returned else 1)
        assert d.resolved_ms == (event if returned else d.point.observed_ms + h)
    # points already labelled churned by sweeps are not labelled again
    assert [d.point.octave for d in s.on_event("u1", ANCHOR, 4, event)] == [4, 5]
    assert s.on_event("u1", ANCHOR, 0, points[0].observed_ms) == []  # not after any point
    with pytest.raises(ValueError, match="late"):
        s.on_event("u1", ANCHOR, 0, ANCHOR - 1)


def test_sweeps_at_due_times_label_each_point_churned_once() -> None:
    s = ObservationSchedule(H, max_silence_days=365.0)
    resolved, sweeps, labelled = 0, 0, []
    due = s.next_due_ms("u1", ANCHOR, resolved)
    while due is not None:
        assert s.on_watermark("u1", ANCHOR, resolved, due - 1) == ([], resolved)
        done, resolved = s.on_watermark("u1", ANCHOR, resolved, due)
        assert done and all(d.label == 1 for d in done)
        labelled += [d.point.octave for d in done]
        sweeps += 1
        due = s.next_due_ms("u1", ANCHOR, resolved)
    assert labelled == list(range(s.octaves)) and sweeps <= s.octaves


def test_slack_delays_sweeps_so_they_batch() -> None:
    s = ObservationSchedule(H, resolve_slack_days=3.0)
    first = s.points("u1", ANCHOR)[0]
    assert s.next_due_ms("u1", ANCHOR, 0) == first.observed_ms + s.horizon_ms + 1 + 3 * MS_PER_DAY


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        ObservationSchedule(0.0)
    with pytest.raises(ValueError, match="max_silence_days"):
        ObservationSchedule(H, max_silence_days=0.5)
    with pytest.raises(ValueError, match="resolve_slack_days"):
        ObservationSchedule(H, resolve_slack_days=-1.0)
