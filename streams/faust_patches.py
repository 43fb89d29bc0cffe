"""What the worker changes in Faust itself, in one place, installed once at import of
streams.app: each change says which Faust behaviour it works around.

- Faust's compiled stream iterator acknowledges records without `Consumer.ack`, which the
  worker guards (EngageWorker._guard_acks): the pure-Python iterator is used instead.
- Faust declares its own topics (the leader topic, changelogs) as the worker starts; a broker
  not ready at that moment (fenced for a moment on a loaded machine, restarting) made the
  worker exit with NodeNotReadyError. Declarations are retried for up to a minute instead,
  logged at each retry.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError
from faust import streams as faust_streams
from faust.transport.drivers.aiokafka import Transport
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger("engage.worker")
TOPIC_DECLARE_PATIENCE_S = 60.0
_NOT_READY = (NodeNotReadyError, KafkaConnectionError, RequestTimedOutError)


def install() -> None:
    faust_streams._CStreamIterator = None  # type: ignore[attr-defined]
    declare = Transport._create_topic
    if getattr(declare, "engage_patient", False):
        return

    async def patient(self: Any, *args: Any, **kwargs: Any) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_NOT_READY),
            stop=stop_after_delay(TOPIC_DECLARE_PATIENCE_S),
            wait=wait_exponential(multiplier=0.5, max=5),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                await declare(self, *args, **kwargs)

    patient.engage_patient = True  # type: ignore[attr-defined]
    Transport._create_topic = patient  # type: ignore[method-assign]
