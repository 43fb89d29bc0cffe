"""The churn topology on Faust: a trainer agent, a model reader on every worker, control.

- Scorers publish resolved examples to `churn.examples` (1 partition: one trainer sees all).
- The trainer agent consumes `churn.examples` and `churn.control` (co-assigned single
  partitions), learns with progressive validation, and publishes signed model versions to
  the compacted `churn.models` and its status to `churn.status`.
- Every worker reads `churn.models` from the beginning with its own group-less consumer,
  verifies each artifact's HMAC before unpickling, and hands the newest to its predictor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from scoring.churn.artifacts import ArtifactRejected, load_artifact, sign_artifact
from scoring.churn.labels import ChurnLabels
from scoring.churn.registry import list_models
from scoring.churn.trainer import ChurnTrainer, ModelSlot, Predictor
from scoring.config import EngageConfig
from sinks.metrics import Metrics
from streams.settings import WorkerSettings

if TYPE_CHECKING:
    from streams.app import EngageWorker

log = logging.getLogger("engage.churn")


class ChurnShell:
    def __init__(self, config: EngageConfig, metrics: Metrics, settings: WorkerSettings) -> None:
        self.config = config
        self.metrics = metrics
        self.settings = settings
        self.key = settings.signing_key
        self.predictor = Predictor()
        self.hooks = ChurnLabels(config.churn, self.predictor.predict, self.predictor.tag)
        self.trainer = ChurnTrainer(
            config.churn.model, config.churn.shadow,
            min_per_class=config.churn.min_examples_per_class,
        )
        # the trainer learns only once the newest published model (and what it had
        # learned) is read back: it resumes from there, never learning an example twice
        self.models_read = asyncio.Event()
        self._last_publish = time.monotonic()
        self._last_request: str | None = None
        self._last_error: str | None = None

    # -- models in -------------------------------------------------------------------------

    def accept_artifact(self, blob: bytes) -> bool:
        """Verify and load one artifact; a refusal is logged and counted, never unpickled."""
        try:
            model, meta = load_artifact(blob, self.key)
        except ArtifactRejected as exc:
            log.error("refusing churn model artifact: %s", exc)
            self.metrics.artifacts_rejected.labels(exc.reason).inc()
            return False
        version, name = int(meta["version"]), str(meta["name"])
        if self.predictor.load(model, name, version):
            self.metrics.model_version.clear()
            self.metrics.model_version.labels("champion", name).set(version)
            log.info("churn model %s v%s in use", name, version)
        trainer = self.trainer
        if not self.models_read.is_set() and version > trainer.version:
            # A (re)started trainer continues from the newest published champion.
            trainer.champion = ModelSlot(name, model)
            trainer.champion.learned = int(meta.get("learned", 0))
            trainer.version = version
            trainer.restore(meta)
        return True

    async def _read_models(self, worker: EngageWorker) -> None:
        topic = self.settings.names.churn_models
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", **self.settings.security.client_settings(),
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning()
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for messages in batches.values():
                    for message in messages:
                        if message.value is not None:
                            self.accept_artifact(message.value)
                if not self.models_read.is_set() and await consumer.position(tp) >= end:
                    self.models_read.set()
        finally:
            await consumer.stop()

    # -- trainer ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        t = self.trainer
        raw = t.status()
        out: dict[str, Any] = {
            "examples_by_label": raw["examples"],
            "examples_skipped_as_learned": t.skipped,
            "publishable": t.publishable,
            "available": [name for name, _ in list_models()],
            "request_id": self._last_request,
            "error": self._last_error,
            "updated_at": int(time.time() * 1000),
        }
        for role in ("champion", "shadow"):
            slot = t.champion if role == "champion" else t.shadow
            if slot is None:
                out[role] = None
                continue
            out[role] = {
                "name": slot.name,
                "version": t.version if role == "champion" else None,
                "learned": slot.learned,
                "metrics": slot.metrics(),
            }
            metrics = slot.metrics()
            if metrics["validated"]:  # undefined before the first label: not exported as 0
                for metric, value in metrics.items():
                    if metric != "validated":
                        self.metrics.model_metric.labels(role, slot.name, metric).set(value)
        return out

    def control(self, command: dict[str, Any]) -> bool:
        """Apply one control command; True when the champion changed (publish a version)."""
        self._last_request = command.get("request_id")
        self._last_error = None
        action, name = command.get("command"), command.get("model")
        try:
            if action == "swap" and name:
                self.trainer.swap(name)
                return True
            if action == "shadow" and name:
                self.trainer.start_shadow(name)
                return False
            if action == "promote":
                self.trainer.promote()
                return True
            if action == "list":
                return False
            self._last_error = f"unknown command {action!r}"
        except (KeyError, TypeError, ValueError) as exc:
            self._last_error = str(exc).strip("'\"")
        return False

    def artifact(self) -> bytes:
        t = self.trainer
        version = t.next_version()
        meta = {
            "name": t.champion.name, "version": version, "learned": t.champion.learned,
            "created_at": int(time.time() * 1000), "metrics": t.champion.metrics(),
            **t.memory(),
        }
        return sign_artifact(t.champion.model, meta, self.key)

    def register(self, worker: EngageWorker) -> None:
        app, names, c = worker.app, self.settings.names, self.config.churn
        channel = app.topic(
            names.churn_examples, names.churn_control,
            key_serializer="raw", value_serializer="raw", partitions=1, internal=False,
        )

        async def publish(force: bool = False) -> None:
            t = self.trainer
            due = t.since_publish >= c.publish_every_examples or (
                t.since_publish and time.monotonic() - self._last_publish >= c.publish_every_seconds
            )
            if (force or due) and t.publishable:
                await worker.topic(names.churn_models).send(key=b"champion", value=self.artifact())
                self._last_publish = time.monotonic()
            await worker.topic(names.churn_status).send(
                key=b"status", value=json.dumps(self.status()).encode()
            )

        @app.agent(channel, name="churn-trainer", concurrency=1)
        async def train(stream: faust.StreamT[Any]) -> None:
            async for events in stream.take_events(500, 0.5):  # type: ignore[attr-defined]
                await self.models_read.wait()
                learned = 0
                for event in events:
                    message = event.message
                    try:
                        body = json.loads(message.value)
                    except (TypeError, ValueError, RecursionError):
                        log.error("unreadable record on %s@%d", message.topic, message.offset)
                        continue
                    if message.topic == names.churn_control:
                        await publish(force=self.control(body))
                    else:
                        try:
                            learned += self.trainer.learn(body, message.offset)
                        except (KeyError, TypeError, ValueError) as exc:
                            log.error("bad churn example at offset %d: %r", message.offset, exc)
                            self.metrics.internal_errors.labels("churn_example").inc()
                if learned:
                    await publish()

        @app.timer(c.publish_every_seconds)
        async def publish_timer() -> None:
            if self.trainer.since_publish:
                await publish()

        @app.task
        async def read_models() -> None:
            while True:
                try:
                    await self._read_models(worker)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the broker may be restarting; keep trying
                    log.exception("model reader failed; retrying in 2s")
                    await asyncio.sleep(2)
