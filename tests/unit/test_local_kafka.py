"""The local broker's cluster ids: never read as an option by Kafka's storage tool."""

from __future__ import annotations

import uuid

import pytest

from deploy import local_kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 of 0xf8... starts with '-'
    plain = uuid.UUID(bytes=bytes(16))
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(local_kafka.uuid, "uuid4", lambda: next(draws))
    assert local_kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
