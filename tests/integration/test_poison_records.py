"""Through the real broker: no record stops the worker. Each poison record between valid
ones goes to the dead-letter topic with its reason (bounded in size), every valid event is
counted exactly once, and SIGTERM still stops the worker within seconds."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from streams.topics import ensure_topics
from tests.helpers import MINUTE, T0
from tests.integration.worker_process import (
    produce,
    read_topic,
    read_until_counted,
    running_worker,
    unique_names,
)

pytestmark = pytest.mark.kafka

HUGE = (
    b'{"event_id": "p-huge", "user_id": "u0", "type": "view", "ts": %d, '
    b'"properties": {"note": "' % T0 + b"\x01" * 900_000 + b'"}}'
)
POISON: list[tuple[bytes | None, str]] = [
    # 997 levels of nesting in 2 KB: the decoder's recursion limit
    (b'{"event_id": "p-deep", "user_id": "u1", "type": "view", "ts": %d, "properties": '
     b'{"x": ' % T0 + b"[" * 997 + b"]" * 997 + b"}}", "malformed_json"),
    # one invalid UTF-8 byte inside each identifier
    (b'{"event_id": "p\xff", "user_id": "u1", "type": "view", "ts": %d}' % T0, "malformed_json"),
    (b'{"event_id": "p-u", "user_id": "u\xff", "type": "view", "ts": %d}' % T0,
     "malformed_json"),
    (b'{"event_id": "p-t", "user_id": "u1", "type": "vi\xffew", "ts": %d}' % T0,
     "malformed_json"),
    (b'{"event_id": "p-c", "user_id": "u1", "type": "view", "channel": "w\xffb", "ts": %d}' % T0,
     "malformed_json"),
    (HUGE, "oversized"),
    (None, "null_value"),
    (b"", "malformed_json"),
    (b'{"event_id": "p-ctl", "user_id": "u1\\u0001", "type": "view", "ts": %d}' % T0,
     "invalid_field"),
    (b'{"event_id": "p-neg", "user_id": "u1", "type": "purchase", "ts": %d, '
     b'"properties": {"amount": -5}}' % T0, "invalid_field"),
    (b'{"event_id": "p-dup", "user_id": "u1", "user_id": "u2", "type": "view", "ts": %d}' % T0,
     "duplicate_key"),
    (b"[1, 2, 3]", "not_an_object"),
]


def valid_event(user: str, i: int) -> bytes:
    return json.dumps({
        "event_id": f"{user}-{i}", "user_id": user, "type": "view", "ts": T0 + i * MINUTE,
    }).encode()


def test_poison_records_are_dead_lettered_and_never_stop_the_worker(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = unique_names()
    ensure_topics(kafka_bootstrap, names, 2)
    users = [f"u{i}" for i in range(12)]
    records: list[tuple[bytes | None, bytes | None]] = []
    expected: dict[str, int] = defaultdict(int)
    poison = iter(POISON)
    for i in range(10):
        for user in users:
            records.append((user.encode(), valid_event(user, i)))
            expected[user] += 1
        bad = next(poison, None)
        if bad is not None:  # poison between valid events, on every partition in turn
            records.append((users[i].encode(), bad[0]))
    records += [(b"u3", value) for value, _ in POISON[10:]]

    with running_worker(
        kafka_bootstrap, names, tmp_path, "--shutdown-timeout", "10"
    ) as worker:
        produce(kafka_bootstrap, names.interactions, records)  # type: ignore[arg-type]
        latest = read_until_counted(kafka_bootstrap, names, expected, timeout_s=120)
        assert {u: r["events_counted"] for u, r in latest.items()} == expected
        dead = read_topic(
            kafka_bootstrap, names.dlq, lambda rs: len(rs) >= len(POISON), timeout_s=60
        )
        metrics = worker.metrics()
        started = time.monotonic()
        os.killpg(worker.proc.pid, signal.SIGTERM)
        worker.proc.wait(timeout=30)
        stopped_in = time.monotonic() - started

    assert Counter(d["reason"] for d in dead) == Counter(reason for _, reason in POISON)
    assert len(dead) == len(POISON)
    huge = next(d for d in dead if d["reason"] == "oversized")
    assert huge["original_truncated"] is True and huge["original_size"] == len(HUGE)
    assert huge["original_sha256"] == hashlib.sha256(HUGE).hexdigest()
    assert len(json.dumps(huge)) < 1_000_000  # writable under the producer's 1 MiB limit
    null = next(d for d in dead if d["reason"] == "null_value")
    assert null["original"] is None and null["original_encoding"] == "null"
    empty = next(d for d in dead if d["original_encoding"] == "utf-8" and d["original"] == "")
    assert empty["reason"] == "malformed_json"
    assert f'outcome="scored",type="view"}} {float(sum(expected.values()))}' in metrics
    assert f'engage_events_consumed_total{{outcome="dead_letter",type="invalid"}} ' \
        f'{float(len(POISON))}' in metrics
    assert stopped_in < 12.0, f"SIGTERM took {stopped_in:.1f} s"
