"""Faust's own topic declarations wait for a broker that is not ready yet (a worker started
while the broker was fenced used to exit with NodeNotReadyError), and give up on other
errors at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import NodeNotReadyError, TopicAuthorizationFailedError
from faust.transport.drivers.aiokafka import Transport

from streams import faust_patches

faust_patches.install()


class FakeTransport:
    """What Transport._create_topic uses of itself; the broker's answers are scripted."""

    def __init__(self, answers: list[BaseException | None]) -> None:
        self._topic_waiters: dict[str, Any] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.answers = answers
        self.calls = 0

    async def _really_create_topic(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer


def declare(transport: FakeTransport) -> None:
    async def run() -> None:
        transport.loop = asyncio.get_running_loop()
        await Transport._create_topic(transport, None, None, "t", 1, 1)  # type: ignore[arg-type]

    asyncio.run(run())


def test_a_broker_not_ready_is_waited_for() -> None:
    transport = FakeTransport([NodeNotReadyError("node -1"), NodeNotReadyError("node -1"), None])
    declare(transport)
    assert transport.calls == 3


def test_other_errors_are_not_retried() -> None:
    transport = FakeTransport([TopicAuthorizationFailedError("no"), None])
    with pytest.raises(TopicAuthorizationFailedError):
        declare(transport)
    assert transport.calls == 1
