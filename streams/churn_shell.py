"""The churn topology on Faust: a trainer agent, a model reader on every worker, control.

- Scorers publish resolved examples to `churn.examples` (1 partition: one trainer sees all).
- The trainer agent consumes `churn.examples` and `churn.control` (co-assigned single
  partitions), learns with progressive validation, and publishes signed model versions to
  the compacted `churn.models` — the champion under the key `champion` (with what a
  restarted trainer needs), and each version under `version/<n>` so that the last
  `churn.keep_versions` stay retrievable for `engage model rollback` — and its status to
  `churn.status`.
- Every worker reads `churn.models` from the beginning with its own group-less consumer,
  verifies each champion artifact's HMAC and feature layout before unpickling, and hands the
  newest to its predictor (with the BG/NBD parameters it carries).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from scoring.churn.artifacts import ArtifactRejected, load_artifact, read_metadata, sign_artifact
from scoring.churn.labels import ChurnLabels
from scoring.churn.layout import layout_problem
from scoring.churn.registry import list_models
from scoring.churn.trainer import (
    ChurnTrainer,
    ExampleRefused,
    ModelSlot,
    Predictor,
    params_from_meta,
)
from scoring.config import EngageConfig
from sinks.metrics import Metrics
from streams.settings import WorkerSettings

if TYPE_CHECKING:
    from streams.app import EngageWorker

log = logging.getLogger("engage.churn")

CHAMPION_KEY = b"champion"
VERSION_KEY_PREFIX = b"version/"


def version_key(version: int) -> bytes:
    return VERSION_KEY_PREFIX + str(version).encode()


class ChurnShell:
    def __init__(self, config: EngageConfig, metrics: Metrics, settings: WorkerSettings) -> None:
        self.config = config
        self.metrics = metrics
        self.settings = settings
        self.key = settings.signing_key
        self.predictor = Predictor()
        self.hooks = ChurnLabels(
            config, self.predictor.predict, self.predictor.tag, self.predictor.bgnbd
        )
        self.trainer = ChurnTrainer.from_config(
            config.churn, min_per_class=config.churn.min_examples_per_class
        )
        # the trainer learns only once the newest published model (and what it had
        # learned) is read back: it resumes from there, never learning an example twice
        self.models_read = asyncio.Event()
        self.history: dict[int, bytes] = {}  # retrievable versions (rollback), by version
        self._caught_up = False
        self._rolled_back_from: int | None = None
        self._last_publish = time.monotonic()
        self._last_request: str | None = None
        self._last_error: str | None = None

    # -- models in -------------------------------------------------------------------------

    def accept_record(self, key: bytes | None, value: bytes | None) -> bool:
        """One record of churn.models: the champion is loaded, versions are kept for
        rollback, tombstones forget them."""
        if key is not None and key.startswith(VERSION_KEY_PREFIX):
            try:
                version = int(key[len(VERSION_KEY_PREFIX):])
            except ValueError:
                return False
            if value is None:
                self.history.pop(version, None)
            else:
                self.history[version] = value
            return True
        return value is not None and self.accept_artifact(value)

    def accept_artifact(self, blob: bytes) -> bool:
        """Verify and load one champion artifact; a refusal is logged and counted, never
        unpickled."""
        try:
            model, meta = load_artifact(blob, self.key, check=layout_problem)
        except ArtifactRejected as exc:
            log.error("refusing churn model artifact: %s", exc)
            self.metrics.artifacts_rejected.labels(exc.reason).inc()
            return False
        version, name = int(meta["version"]), str(meta["name"])
        if self.predictor.load(model, name, version, params_from_meta(meta)):
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
                        self.accept_record(message.key, message.value)
                if not self.models_read.is_set() and await consumer.position(tp) >= end:
                    self.models_read.set()
        finally:
            await consumer.stop()

    async def _catch_up(self, until: int) -> None:
        """Read the examples a restarted trainer must see again — from the oldest one that
        was waiting for its release time when the newest artifact was written, up to where
        the agent's own consumer starts — before the agent goes on."""
        start = self.trainer.resume_from
        if start >= until:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker, group_id=None, enable_auto_commit=False,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.names.churn_examples, 0)
            consumer.assign([tp])
            consumer.seek(tp, start)
            while await consumer.position(tp) < until:
                for messages in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    for message in messages:
                        if message.offset < until:
                            self._learn_one(message.value, message.offset)
        finally:
            await consumer.stop()
        log.info("churn trainer caught up on examples %d..%d", start, until - 1)

    # -- trainer ---------------------------------------------------------------------------

    def _learn_one(self, value: bytes | None, offset: int) -> int:
        try:
            body = json.loads(value) if value is not None else None
            if not isinstance(body, dict):
                raise ExampleRefused("not a JSON object")
            return self.trainer.learn(body, offset)
        except (ExampleRefused, TypeError, ValueError, RecursionError) as exc:
            log.error("bad churn example at offset %d: %s", offset, exc)
            self.metrics.internal_errors.labels("churn_example").inc()
            return 0

    def status(self) -> dict[str, Any]:
        t = self.trainer
        raw = t.status()
        out: dict[str, Any] = {
            "examples_by_label": raw["examples"],
            "examples_waiting": raw["waiting"],
            "examples_skipped_as_learned": t.skipped,
            "publishable": t.publishable,
            "available": [name for name, _ in list_models()],
            "bgnbd": raw["bgnbd"],
            "comparison": raw["comparison"],
            "versions": self.versions(),
            "request_id": self._last_request,
            "error": self._last_error,
            "updated_at": int(time.time() * 1000),
        }
        m = self.metrics
        m.model_metric.clear()
        m.model_drifts.clear()
        for role in ("champion", "shadow"):
            slot = t.champion if role == "champion" else t.shadow
            if slot is None:
                out[role] = None
                continue
            summary = slot.summary()
            out[role] = {
                "name": slot.name,
                "version": t.version if role == "champion" else None,
                "learned": slot.learned,
                "metrics": summary,
            }
            m.model_drifts.labels(role, slot.name).set(float(summary["drifts"] or 0))
            for metric, value in summary.items():
                # undefined before the first label: not exported at all (never as 0 or -0)
                if metric not in ("validated", "drifts") and value is not None:
                    m.model_metric.labels(role, slot.name, metric).set(value)
        m.comparison_metric.clear()
        if raw["comparison"] is not None:
            for role in ("champion", "shadow"):
                side = raw["comparison"][role]
                m.comparison_metric.labels(role, side["name"], "examples").set(
                    raw["comparison"]["examples"]
                )
                for metric in ("roc_auc", "log_loss", "brier", "ece"):
                    if side[metric] is not None:
                        m.comparison_metric.labels(role, side["name"], metric).set(side[metric])
        return out

    def versions(self) -> list[dict[str, Any]]:
        """The retrievable versions, newest first (metadata read, nothing unpickled)."""
        out = []
        for version in sorted(self.history, reverse=True):
            try:
                meta = read_metadata(self.history[version])
            except ArtifactRejected:
                continue
            out.append({"version": version, "name": meta.get("name"),
                        "learned": meta.get("learned")})
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
            if action == "rollback":
                self.rollback(command.get("version"))
                return True
            if action == "list":
                return False
            self._last_error = f"unknown command {action!r}"
        except (KeyError, TypeError, ValueError) as exc:
            self._last_error = str(exc).strip("'\"")
        return False

    def rollback(self, version: int | None) -> None:
        """Make a previous signed version the champion again (published as a new version,
        so every predictor takes it); the trainer's memory and BG/NBD parameters stay."""
        if version is None:
            older = [v for v in self.history if v < self.trainer.version]
            if not older:
                raise ValueError("there is no earlier version to roll back to")
            version = max(older)
        blob = self.history.get(int(version))
        if blob is None:
            kept = ", ".join(str(v) for v in sorted(self.history, reverse=True)[:5])
            raise ValueError(f"version {version} is not retrievable (newest kept: {kept})")
        try:
            model, meta = load_artifact(blob, self.key, check=layout_problem)
        except ArtifactRejected as exc:
            raise ValueError(str(exc)) from None
        slot = ModelSlot(str(meta["name"]), model)
        slot.learned = int(meta.get("learned", 0))
        self.trainer.set_champion(slot)
        self._rolled_back_from = int(version)

    def artifacts(self) -> list[tuple[bytes, bytes | None]]:
        """The records of one publication: the champion (with the trainer's memory), the
        version itself, and tombstones for versions beyond `churn.keep_versions`."""
        t = self.trainer
        version = t.next_version()
        meta = {**t.artifact_meta(), "version": version, "created_at": int(time.time() * 1000)}
        if self._rolled_back_from is not None:
            meta["rolled_back_from"], self._rolled_back_from = self._rolled_back_from, None
        model = t.champion.model
        kept = self.history[version] = sign_artifact(model, meta, self.key)
        records: list[tuple[bytes, bytes | None]] = [
            (CHAMPION_KEY, sign_artifact(model, {**meta, **t.memory()}, self.key)),
            (version_key(version), kept),
        ]
        for stale in sorted(self.history)[: -self.config.churn.keep_versions]:
            del self.history[stale]
            records.append((version_key(stale), None))
        return records

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
                for key, value in self.artifacts():
                    await worker.topic(names.churn_models).send(key=key, value=value)
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
                    if message.topic == names.churn_control:
                        try:
                            body = json.loads(message.value)
                        except (TypeError, ValueError, RecursionError):
                            log.error("unreadable record on %s@%d", message.topic,
                                      message.offset)
                            continue
                        await publish(force=self.control(body))
                        continue
                    if not self._caught_up:
                        await self._catch_up(message.offset)
                        self._caught_up = True
                    learned += self._learn_one(message.value, message.offset)
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
