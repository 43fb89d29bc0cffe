"""Prometheus metrics: what SREs watch. One registry per worker process.

Names follow Prometheus conventions (`engage_` prefix, `_total` counters, base units).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scoring.leaderboards import period_label


def observe_all(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe(a)` for every amount, with one bucket increment per bucket hit
    instead of a bucket scan and two locked increments per amount: the worker observes
    each event's age once per batch. The buckets and sum come out as observing each would
    (the sum up to float rounding). Uses the client's bucket fields, as its own `observe`
    does; tests/unit/test_metrics_batch.py holds it to `observe`."""
    if not amounts:
        return
    bounds = histogram._upper_bounds
    hits = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        total += amount
        if amount == amount:  # NaN: in the sum, in no bucket, as `observe`
            hits[bisect_left(bounds, amount)] += 1  # the first bound >= amount
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    histogram._sum.inc(total)
    for bucket, n in zip(histogram._buckets, hits, strict=True):
        if n:
            bucket.inc(n)


class PopulationCollector(Collector):
    """Population health gauges, read at scrape time from the partitions this worker holds
    (scoring/population_health.py): sum them over `partition` for the cluster."""

    def __init__(self, population: dict[int, dict[str, int]]) -> None:
        self.population = population

    def collect(self) -> Iterator[GaugeMetricFamily]:
        users = GaugeMetricFamily(
            "engage_population_users",
            "Users by kind (all, buyers, repeat_buyers, referrers), per partition.",
            labels=["partition", "kind"])
        active = GaugeMetricFamily(
            "engage_population_active_users",
            "Users active in the partition's current UTC day or calendar month (event time).",
            labels=["partition", "window"])
        cohorts = GaugeMetricFamily(
            "engage_cohort_active_users",
            "Users of a weekly cohort (week of their first event, its Monday) active again "
            "in week weeks_since, per partition.", labels=["partition", "cohort", "weeks_since"])
        for partition, counts in sorted(self.population.items()):
            p = str(partition)
            for kind, key in (("all", "users"), ("buyers", "buyers"),
                              ("repeat_buyers", "repeat_buyers"), ("referrers", "referrers")):
                users.add_metric([p, kind], counts.get(key, 0))
            for window, prefix in (("day", "dau:"), ("month", "mau:")):
                periods = [int(k.split(":")[1]) for k in counts if k.startswith(prefix)]
                if periods:
                    active.add_metric([p, window], counts[f"{prefix}{max(periods)}"])
            for key, n in counts.items():
                if key.startswith("cohort:"):
                    _, week, since = key.split(":")
                    cohorts.add_metric([p, period_label("week", int(week)), since], n)
        yield users
        yield active
        yield cohorts


class Metrics:
    """All of the worker's metrics, on their own registry so tests can read them in isolation."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "engage_events_consumed_total",
            "Interaction events consumed, by event type and outcome "
            "(scored, duplicate, late, capped, dead_letter, rekeyed).",
            ["type", "outcome"], registry=r,
        )
        self.dead_letters = Counter(
            "engage_dead_letters_total", "Records sent to the dead-letter topic, by reason.",
            ["reason"], registry=r,
        )
        self.processing_lag = Histogram(
            "engage_processing_lag_seconds",
            "Wall-clock time from an event's own timestamp to the moment it was scored.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
            registry=r,
        )
        self.users_tracked = Gauge(
            "engage_users_tracked", "Users with state on this worker.", registry=r,
        )
        self.watermark = Gauge(
            "engage_watermark_seconds",
            "Event-time watermark per input partition (epoch seconds).",
            ["partition"], registry=r,
        )
        self.sweeps = Counter(
            "engage_sweeps_total", "Watermark-driven user sweeps (silent users revisited).",
            registry=r,
        )
        self.batch_size = Histogram(
            "engage_batch_events", "Events per processed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000), registry=r,
        )
        self.batch_phase = Histogram(
            "engage_batch_phase_seconds",
            "Time a batch spends per phase: score (the loop scoring it), outputs (until "
            "the broker acknowledged them), changelog (until its states were acknowledged); "
            "outputs and changelog overlap the next batch's scoring. waiting: the loop "
            "waited for the oldest batch in flight to be stored before scoring another.",
            ["phase"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        self.triggers_emitted = Counter(
            "engage_triggers_emitted_total", "Triggers emitted, by type and variant.",
            ["type", "variant"], registry=r,
        )
        self.triggers_suppressed = Counter(
            "engage_triggers_suppressed_total",
            "Triggers not emitted, by type and reason (cooldown, daily_cap).",
            ["type", "reason"], registry=r,
        )
        self.churn_examples = Counter(
            "engage_churn_examples_total", "Resolved churn examples, by label.",
            ["label"], registry=r,
        )
        self.model_version = Gauge(
            "engage_churn_model_version", "Model version in use, by role and model name.",
            ["role", "model"], registry=r,
        )
        self.model_metric = Gauge(
            "engage_churn_model_metric",
            "Progressive-validation metrics (roc_auc, log_loss, brier, ece over the latest "
            "10000 examples, recent_log_loss: ADWIN's mean loss) by role and model; absent "
            "before the first label.",
            ["role", "model", "metric"], registry=r,
        )
        self.model_drifts = Gauge(
            "engage_churn_model_drift_detections",
            "Changes in the model's log loss detected by ADWIN since the model took its role.",
            ["role", "model"], registry=r,
        )
        self.comparison_metric = Gauge(
            "engage_churn_comparison_metric",
            "Champion and shadow on the same examples since the shadow started (paired): "
            "examples, roc_auc, log_loss, brier, ece by role and model.",
            ["role", "model", "metric"], registry=r,
        )
        self.artifacts_rejected = Counter(
            "engage_churn_model_artifacts_rejected_total",
            "Model artifacts refused (unsigned, tampered, wrong key, malformed, layout: "
            "trained on other features).",
            ["reason"], registry=r,
        )

        self.internal_errors = Counter(
            "engage_internal_errors_total",
            "Failures inside the worker that did not stop it, by where they happened.",
            ["where"], registry=r,
        )

        self.output_stalled = Gauge(
            "engage_output_stalled",
            "1 while the worker retries outputs Kafka has not acknowledged (scoring waits).",
            registry=r,
        )
        self.output_failures = Counter(
            "engage_output_failures_total",
            "Output records Kafka did not take at once: retried (transient), permanent "
            "(dead-lettered), or not_atomic (a changelog group sent record by record).",
            ["topic", "kind"], registry=r,
        )
        self.input_stalled = Gauge(
            "engage_input_partitions_stalled",
            "Input partitions with records waiting that nothing has read for stall_after "
            "seconds (each one is logged with the consumer's state).", registry=r,
        )
        self.ready = Gauge(
            "engage_ready", "1 when /readyz answers ready (see docs/operations.md).", registry=r,
        )
        self.referral_invites = Counter(
            "engage_referral_invites_total", "Referral invites sent to an invitee.", registry=r,
        )
        self.referral_conversions = Counter(
            "engage_referral_conversions_total",
            "Referral conversions credited after the review period.", registry=r,
        )
        self.referral_flags = Counter(
            "engage_referral_flags_total",
            "Referrals withheld as suspicious, by reason (self_referral, ring, thin, farm, burst).",
            ["reason"], registry=r,
        )
        self.points = Counter(
            "engage_points_total", "Points earned or spent, by kind.", ["kind"], registry=r,
        )
        self.points_redemptions = Counter(
            "engage_points_redemptions_total",
            "Redemptions, by outcome (spent; refused: more than the balance).",
            ["outcome"], registry=r,
        )
        self.messages = Counter(
            "engage_routed_messages_total",
            "Messages between users' partitions (referral steps) applied, by kind and outcome "
            "(received, already_applied).", ["kind", "outcome"], registry=r,
        )
        self.experiment_users = Counter(
            "engage_experiment_users_total",
            "Users entering a trigger type's experiment (their first trigger of the type), "
            "by type and variant (intent to treat).", ["type", "variant"], registry=r,
        )
        self.experiment_conversions = Counter(
            "engage_experiment_conversions_total",
            "Experiment users with an outcome event within experiments.window_days of their "
            "first trigger, by type and variant.", ["type", "variant"], registry=r,
        )
        self._by_name: dict[str, Counter] = {
            c._name + "_total": c for c in (
                self.referral_invites, self.referral_conversions, self.referral_flags,
                self.points, self.points_redemptions, self.experiment_users,
                self.experiment_conversions,
            )
        }
        # partition -> its population counts (live references into the partition states)
        self.population: dict[int, dict[str, int]] = {}
        r.register(PopulationCollector(self.population))

    def count(self, name: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """An increment asked for by the scoring core (engine extensions), by metric name."""
        counter = self._by_name.get(name)
        if counter is None:
            raise KeyError(f"the core asked for an unknown metric {name!r}")
        (counter.labels(*labels) if labels else counter).inc(amount)

    def count_suppressed(self, trigger_type: str, reason: str) -> None:
        self.triggers_suppressed.labels(trigger_type, reason).inc()

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP in a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)
