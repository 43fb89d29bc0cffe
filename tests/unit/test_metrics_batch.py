"""observe_all must leave a histogram exactly as observing each amount would."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sinks.metrics import observe_all

BUCKETS = (0.01, 0.05, 0.1, 1, 60, 86400)


def _pair(labels: tuple[str, ...] = ()) -> tuple[CollectorRegistry, Histogram, Histogram]:
    registry = CollectorRegistry()
    each = Histogram("each_seconds", "d", list(labels), buckets=BUCKETS, registry=registry)
    batch = Histogram("batch_seconds", "d", list(labels), buckets=BUCKETS, registry=registry)
    return registry, each, batch


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in registry.collect():
        if family.name == name:
            for s in family.samples:
                if not s.name.endswith("_created"):
                    out[(s.name.replace(name, ""), s.labels.get("le", ""))] = s.value
    return out


def test_bounds_zero_and_beyond_the_last_bucket() -> None:
    registry, each, batch = _pair()
    amounts = [0.0, 0.01, 0.0100001, 0.05, 1.0, 59.9, 60.0, 86400.0, 86400.5, 1e9]
    for a in amounts:
        each.observe(a)
    observe_all(batch, amounts)
    assert _samples(registry, "each_seconds") == _samples(registry, "batch_seconds")
    assert _samples(registry, "batch_seconds")[("_bucket", "0.01")] == 2  # on the bound: in it
    assert _samples(registry, "batch_seconds")[("_count", "")] == len(amounts)


def test_nan_is_summed_but_in_no_bucket_as_observe_does() -> None:
    registry, each, batch = _pair()
    for a in (1.0, math.nan):
        each.observe(a)
    observe_all(batch, [1.0, math.nan])
    e, b = _samples(registry, "each_seconds"), _samples(registry, "batch_seconds")
    assert math.isnan(e[("_sum", "")]) and math.isnan(b[("_sum", "")])
    assert {k: v for k, v in e.items() if k[0] != "_sum"} == {
        k: v for k, v in b.items() if k[0] != "_sum"}


def test_nothing_observed_leaves_the_histogram_untouched() -> None:
    registry, _, batch = _pair()
    observe_all(batch, [])
    assert b"batch_seconds_count 0.0" in generate_latest(registry)


def test_a_labelled_child() -> None:
    registry, each, batch = _pair(("phase",))
    for a in (0.2, 3.0):
        each.labels("score").observe(a)
    observe_all(batch.labels("score"), [0.2, 3.0])
    assert _samples(registry, "each_seconds") == _samples(registry, "batch_seconds")


@given(st.lists(st.floats(min_value=0, max_value=1e7), max_size=50))
def test_any_ages(amounts: list[float]) -> None:
    registry, each, batch = _pair()
    for a in amounts:
        each.observe(a)
    observe_all(batch, amounts)
    e, b = _samples(registry, "each_seconds"), _samples(registry, "batch_seconds")
    assert e.pop(("_sum", "")) == pytest.approx(b.pop(("_sum", "")))
    assert e == b
