"""Which partition a user lives on — Kafka's default partitioner, without importing Kafka.

Replay mirrors the worker's per-partition watermarks, so it must place users exactly as the
Kafka producer's murmur2 partitioner does.
"""

from __future__ import annotations

from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as a signed 32-bit int like the Java client."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        j = i * 4
        k = data[j] | (data[j + 1] << 8) | (data[j + 2] << 16) | (data[j + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


@lru_cache(maxsize=1 << 17)
def partition_for_user(user_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a `user_id` key.

    Cached: murmur2 in Python costs microseconds and every event asks, for few distinct users.
    """
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions
