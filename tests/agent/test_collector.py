"""The worker's garbage-collector settings and pause metric (streams/collector.py)."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from streams.collector import YOUNG_THRESHOLD, measure_pauses, settle_collector


def test_settling_freezes_what_exists_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_every_collection_is_observed_by_generation_once_per_registry() -> None:
    registry = CollectorRegistry()
    callbacks = len(gc.callbacks)
    gc.disable()  # only the collections below
    try:
        measure_pauses(registry)
        measure_pauses(registry)  # a second call adds no second observer
        assert len(gc.callbacks) == callbacks + 1
        gc.collect(2)
        gc.collect(0)

        def count(generation: str) -> float | None:
            return registry.get_sample_value(
                "engage_gc_pause_seconds_count", {"generation": generation})

        assert count("2") == 1 and count("0") == 1 and count("1") == 0
    finally:
        del gc.callbacks[callbacks:]
        gc.enable()
