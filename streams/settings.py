"""Worker settings from flags and environment: where the broker, config and ports are."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from streams.kafka_security import DEFAULT_BROKER, KafkaSecurity, resolve_connection
from streams.topics import TopicNames, TopicPolicy

__all__ = ["DEFAULT_BROKER", "WorkerSettings", "env_broker"]


def env_broker() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BROKER)


@dataclass(frozen=True)
class WorkerSettings:
    broker: str = field(default_factory=env_broker)
    config_path: str | None = field(default_factory=lambda: os.environ.get("ENGAGE_CONFIG"))
    metrics_port: int = field(
        default_factory=lambda: int(os.environ.get("ENGAGE_METRICS_PORT", "9464"))
    )
    web_port: int = field(default_factory=lambda: int(os.environ.get("ENGAGE_WEB_PORT", "6066")))
    # Where the web views and /metrics listen. 127.0.0.1 keeps a laptop's worker private;
    # the container image sets ENGAGE_BIND_ADDRESS=0.0.0.0 so probes and scrapes reach it.
    web_bind: str = field(
        default_factory=lambda: os.environ.get("ENGAGE_BIND_ADDRESS", "127.0.0.1")
    )
    # How other workers reach this one's web views (user lookups are forwarded to the
    # partition's owner): a pod IP or DNS name. Empty: the bind address, or the host name
    # when bound to every interface.
    web_host: str = field(default_factory=lambda: os.environ.get("ENGAGE_ADVERTISED_HOST", ""))
    app_id: str = "engage"
    partitions: int = 4
    store: str = "memory"  # or "rocksdb" (rocksdict)
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("ENGAGE_DATA_DIR", "var")))
    names: TopicNames = field(default_factory=TopicNames)
    batch_max: int = 10_000
    batch_within_s: float = 0.2
    fetch_max_bytes: int = 4 * 1024 * 1024  # per input partition and fetch
    tick_interval_s: float = 5.0
    idle_advance_s: float = 60.0
    reference_wait_s: float = 120.0  # longest a partition waits for another's snapshot (0: never)
    shutdown_timeout_s: float = 15.0  # SIGTERM: the process exits within this, whatever holds
    stall_after_s: float = 30.0  # /readyz: outputs failing or input waiting this long
    signing_key: bytes = b""  # resolved by streams.secrets (never a flag)
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line, for log shippers
    security: KafkaSecurity = field(default_factory=lambda: resolve_connection().security)
    topic_policy: TopicPolicy = field(default_factory=TopicPolicy)
    standby_replicas: int = 0  # warm copies of each table partition on other workers

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://{b.strip()}" for b in self.broker.split(","))

    @property
    def store_url(self) -> str:
        return "rocksdb://" if self.store == "rocksdb" else "memory://"

    def __post_init__(self) -> None:
        if not self.web_host:  # Faust's canonical_url must name an address others can reach
            wildcard = self.web_bind in ("0.0.0.0", "::", "")
            host = socket.gethostname() if wildcard else self.web_bind
            object.__setattr__(self, "web_host", host)
