"""Worker settings from flags and environment: where the broker, config and ports are."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from streams.topics import TopicNames

DEFAULT_BROKER = "127.0.0.1:9092"


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
    web_bind: str = "127.0.0.1"
    web_host: str = "127.0.0.1"
    app_id: str = "engage"
    partitions: int = 4
    store: str = "memory"  # or "rocksdb" (rocksdict)
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("ENGAGE_DATA_DIR", "var")))
    names: TopicNames = field(default_factory=TopicNames)
    batch_max: int = 2000
    batch_within_s: float = 0.2
    tick_interval_s: float = 5.0
    idle_advance_s: float = 60.0
    reference_wait_s: float = 120.0  # longest a partition waits for another's snapshot
    shutdown_timeout_s: float = 15.0  # SIGTERM: the process exits within this, whatever holds
    stall_after_s: float = 30.0  # /readyz: outputs failing or input waiting this long
    signing_key: bytes = b""  # resolved by streams.secrets (never a flag)
    log_level: str = "info"

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://{b.strip()}" for b in self.broker.split(","))

    @property
    def store_url(self) -> str:
        return "rocksdb://" if self.store == "rocksdb" else "memory://"
