"""Where simulated events go: a JSONL(.gz) file or a Kafka topic. Also the truth file."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import msgspec

from simulator.population import Truth

_encoder = msgspec.json.Encoder()


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact JSON bytes of one event (key order preserved)."""
    return _encoder.encode(event)


class Sink(Protocol):
    """Receives already-encoded messages."""

    description: str

    def write(self, key: bytes | None, value: bytes) -> None: ...

    def close(self) -> None: ...


def _ensure_parent(path: str | os.PathLike[str]) -> None:
    parent = Path(path).parent
    if str(parent) not in ("", "."):
        parent.mkdir(parents=True, exist_ok=True)


class FileSink:
    """JSONL file, gzip-compressed when the name ends in `.gz`; one message per line."""

    def __init__(self, path: str | os.PathLike[str], batch: int = 2000) -> None:
        _ensure_parent(path)
        self.path = str(path)
        self.description = self.path
        raw: gzip.GzipFile | io.BufferedWriter
        if self.path.endswith(".gz"):
            raw = gzip.open(self.path, "wb", compresslevel=4)  # noqa: SIM115
        else:
            raw = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh = raw
        self._buf: list[bytes] = []
        self._batch = batch

    def write(self, key: bytes | None, value: bytes) -> None:
        self._buf.append(value)
        if len(self._buf) >= self._batch:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._buf.append(b"")
            self._fh.write(b"\n".join(self._buf))
            self._buf.clear()

    def close(self) -> None:
        self._flush()
        self._fh.close()

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class KafkaSink:
    """Kafka topic via kafka-python: key = user_id bytes, value = JSON bytes."""

    def __init__(self, topic: str, bootstrap_servers: str, linger_ms: int = 20,
                 **producer_config: Any) -> None:
        from kafka import KafkaProducer  # imported lazily: file output needs no Kafka

        self.topic = topic
        self.description = f"kafka://{bootstrap_servers}/{topic}"
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers.split(","),
            linger_ms=linger_ms,
            acks=1,
            batch_size=64 * 1024,
            client_id="engage-simulator",
            **producer_config,
        )

    def write(self, key: bytes | None, value: bytes) -> None:
        self._producer.send(self.topic, key=key, value=value)

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()


def write_truth(path: str | os.PathLike[str], truths: Iterable[Truth]) -> int:
    """Ground truth, one JSON object per user (JSONL). Returns how many were written."""
    _ensure_parent(path)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for t in truths:
            fh.write(json.dumps(t.to_dict(), separators=(",", ":")))
            fh.write("\n")
            n += 1
    return n
