"""Every worker's copy of the cluster's leaderboards, without a broker: the latest record of
each partition wins, decoded only when a view asks."""

from __future__ import annotations

import json

import pytest

from streams.leaderboard_reader import LeaderboardReader


def record(partition: int, user: str, points: float) -> bytes:
    return json.dumps({"partition": partition,
                       "boards": {"all:points": [[points, user]]}}).encode()


def test_the_latest_record_of_each_partition_is_what_views_see() -> None:
    reader = LeaderboardReader("127.0.0.1:1", "t")
    reader._take(b"0", record(0, "u1", 5))
    reader._take(b"0", record(0, "u2", 7))  # replaces partition 0's board
    reader._take(b"1", record(1, "u3", 6))
    reader._take(b"1", None)  # a tombstone changes nothing
    assert reader.boards == {0: {"all:points": [[7, "u2"]]}, 1: {"all:points": [[6, "u3"]]}}
    reader._take(b"1", record(1, "u4", 9))
    assert reader.boards[1] == {"all:points": [[9, "u4"]]}
    assert reader.boards[0] == {"all:points": [[7, "u2"]]}


def test_an_unreadable_record_is_logged_and_the_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = LeaderboardReader("127.0.0.1:1", "t")
    reader._take(b"0", record(0, "u1", 5))
    reader._take(b"1", b"{not json")
    reader._take(None, record(2, "u2", 3))  # keyed otherwise: read from its value
    assert sorted(reader.boards) == [0, 2]
    assert "unreadable leaderboard record" in caplog.text
