"""Prometheus metrics of the webhook sink, on their own registry (one `engage webhook` process).

They answer what an SRE asks of a webhook: is it delivering, how often does the endpoint fail,
how slow is it, how much is waiting, and is the sink keeping its place in the consumer group.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class WebhookMetrics:
    """Every metric the webhook sink and its runtime update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "engage_webhook_deliveries_total",
            "Trigger records by final outcome (delivered, failed, malformed, skipped_control, "
            "expired).",
            ["outcome"], registry=r,
        )
        self.attempts = Counter(
            "engage_webhook_attempts_total",
            "HTTP attempts by result (2xx, 3xx, 4xx, 429, 5xx, timeout, connection_error).",
            ["result"], registry=r,
        )
        self.request_seconds = Histogram(
            "engage_webhook_request_duration_seconds",
            "Duration of one HTTP attempt, waiting for a pooled connection included.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.delivery_seconds = Histogram(
            "engage_webhook_delivery_duration_seconds",
            "From a delivery's first attempt to its final outcome, backoff included.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "engage_webhook_in_flight", "Deliveries started and not finished (backoff included).",
            registry=r,
        )
        self.pending = Gauge(
            "engage_webhook_pending_records",
            "Records consumed whose offsets cannot be committed yet (in flight, or behind one).",
            registry=r,
        )
        self.lag = Gauge(
            "engage_webhook_consumer_lag",
            "Records in a partition past the sink's committed offset (high watermark - committed).",
            ["topic", "partition"], registry=r,
        )
        self.paused_partitions = Gauge(
            "engage_webhook_paused_partitions",
            "Partitions not fetched because their backlog is full (the group is kept).",
            registry=r,
        )
        self.rebalances = Counter(
            "engage_webhook_rebalances_total",
            "Consumer group rebalance callbacks, by event (assigned, revoked).",
            ["event"], registry=r,
        )
        self.commits = Counter(
            "engage_webhook_commits_total", "Offset commits, by result (ok, failed).",
            ["result"], registry=r,
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP in a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)
