"""Which worker answers a user lookup: the owner of the user's partition, as engage places it.

The scoring shell writes each user's state to the changelog partition of the user's input
partition (Kafka's murmur2 of the raw user id, scoring.partitioning). Faust's router would
hash the changelog's *serialized* key instead, JSON-quoted (`"u1"`), and so send a lookup to
the wrong worker whenever more than one runs. This router hashes the raw id, like the shell.
"""

from __future__ import annotations

from typing import Any

from faust.app.router import Router
from faust.types import CollectionT


class UserPartitionRouter(Router):
    """faust.App(Router=...): routes table lookups by the raw bytes of a str key."""

    @classmethod
    def _get_serialized_key(cls, table: CollectionT, key: Any) -> bytes:
        if isinstance(key, str):
            return key.encode()
        return super()._get_serialized_key(table, key)
