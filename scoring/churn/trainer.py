"""Online training with progressive validation, a champion and an optional shadow.

Every resolved example is first *predicted* by each model (scored into ROC AUC, log loss
and Brier score), then *learned*: the metrics are honest out-of-sample figures. A recent
example buffer warm-starts a newly swapped-in or shadow model so it is not cold on arrival.

Each example is learned once, whatever restarts happen around it: the trainer remembers the
examples-topic offset it learned through (published in every artifact, so a restarted
trainer resumes from its model, not from a committed offset), and the ids of the latest
`RECENT_IDS` examples, so a copy a scorer sent again after its own crash is recognised.
No model is published before it has learned `min_per_class` examples of each label: a
model that has seen one class only would answer 0 or 1 for everybody.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from river import metrics as river_metrics

from scoring.churn.registry import build_model
from scoring.features import FEATURE_NAMES
from scoring.records import ChurnExample


class Brier:
    """Mean squared error of the probability; river has no Brier score."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def update(self, y: bool, p: float) -> None:
        self.n += 1
        self.total += (p - float(y)) ** 2

    def get(self) -> float:
        return self.total / self.n if self.n else 0.0


class ModelSlot:
    """One model with its own progressive-validation metrics."""

    def __init__(self, name: str, model: Any | None = None) -> None:
        self.name = name
        self.model = model if model is not None else build_model(name)
        self.reset_metrics()
        self.learned = 0

    def reset_metrics(self) -> None:
        self.auc = river_metrics.ROCAUC()
        self.logloss = river_metrics.LogLoss()
        self.brier = Brier()
        self.validated = 0

    def predict(self, x: Mapping[str, float]) -> float:
        proba = self.model.predict_proba_one(dict(x))
        return float(proba.get(True, 0.0))

    def learn(self, x: Mapping[str, float], y: bool, validate: bool = True) -> None:
        if validate:
            p = min(1.0 - 1e-7, max(1e-7, self.predict(x)))
            self.auc.update(y, p)
            self.logloss.update(y, p)
            self.brier.update(y, p)
            self.validated += 1
        self.model.learn_one(dict(x), y)
        self.learned += 1

    def metrics(self) -> dict[str, float]:
        return {
            "roc_auc": round(self.auc.get(), 4),
            "log_loss": round(self.logloss.get(), 4),
            "brier": round(self.brier.get(), 4),
            "validated": self.validated,
        }


RECENT_IDS = 10_000


def example_id(example: Mapping[str, Any]) -> int | None:
    """A 64-bit id of an example: its user and observation time (None without them)."""
    user, observed = example.get("user_id"), example.get("observed_at")
    if user is None or observed is None:
        return None
    text = f"{user}|{observed}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def as_features(vector: Sequence[float]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector, strict=True))


class ChurnTrainer:
    """Learns from resolved examples; swaps, shadows and promotes models on command."""

    def __init__(
        self,
        champion: str = "logreg",
        shadow: str = "",
        buffer_size: int = 5000,
        min_per_class: int = 0,
    ) -> None:
        self.champion = ModelSlot(champion)
        self.shadow: ModelSlot | None = ModelSlot(shadow) if shadow else None
        self.buffer: deque[tuple[dict[str, float], bool]] = deque(maxlen=buffer_size)
        self.labels = {0: 0, 1: 0}
        self.version = 0
        self.since_publish = 0
        self.min_per_class = min_per_class
        self.learned_through = -1  # offset of the last example learned (examples topic)
        self.recent: deque[int] = deque(maxlen=RECENT_IDS)
        self._recent_set: set[int] = set()
        self.skipped = 0  # examples recognised as already learned

    def learn(
        self, example: Mapping[str, Any] | ChurnExample, offset: int | None = None
    ) -> bool:
        """Learn one resolved example, unless it was learned before; True when learned."""
        if isinstance(example, ChurnExample):
            example = msgspec.structs.asdict(example)
        if offset is not None:
            if offset <= self.learned_through:
                self.skipped += 1
                return False
            self.learned_through = offset
        eid = example_id(example)
        if eid is not None:
            if eid in self._recent_set:
                self.skipped += 1
                return False
            if len(self.recent) == self.recent.maxlen:
                self._recent_set.discard(self.recent[0])
            self.recent.append(eid)
            self._recent_set.add(eid)
        self._learn(example)
        return True

    @property
    def publishable(self) -> bool:
        """Both labels seen often enough for the model's probabilities to mean something."""
        return min(self.labels.values()) >= self.min_per_class

    def memory(self) -> dict[str, Any]:
        """What an artifact carries so a restarted trainer learns nothing twice."""
        ids = b"".join(i.to_bytes(8, "big") for i in self.recent)
        return {
            "learned_through": self.learned_through,
            "recent_ids": base64.b64encode(ids).decode("ascii"),
            "labels": [self.labels[0], self.labels[1]],
        }

    def restore(self, meta: Mapping[str, Any]) -> None:
        self.learned_through = int(meta.get("learned_through", -1))
        raw = base64.b64decode(str(meta.get("recent_ids", "")))
        self.recent.clear()
        self.recent.extend(
            int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw) - 7, 8)
        )
        self._recent_set = set(self.recent)
        labels = meta.get("labels")
        if isinstance(labels, list) and len(labels) == 2:
            self.labels = {0: int(labels[0]), 1: int(labels[1])}

    def _learn(self, example: Mapping[str, Any]) -> None:
        x: dict[str, float] = {k: float(v) for k, v in example["features"].items()}
        y = bool(example["label"])
        self.labels[int(y)] += 1
        self.champion.learn(x, y)
        if self.shadow is not None:
            self.shadow.learn(x, y)
        self.buffer.append((x, y))
        self.since_publish += 1

    def _warm(self, slot: ModelSlot) -> ModelSlot:
        for x, y in self.buffer:
            slot.learn(x, y, validate=False)
        return slot

    def swap(self, name: str) -> None:
        """Replace the champion by a fresh `name`, warm-started on the recent examples."""
        self.champion = self._warm(ModelSlot(name))
        self.since_publish = max(self.since_publish, 1)

    def start_shadow(self, name: str) -> None:
        self.shadow = self._warm(ModelSlot(name))

    def promote(self) -> None:
        """The shadow becomes the champion (keeping what it learned and its metrics)."""
        if self.shadow is None:
            raise ValueError("there is no shadow model to promote")
        self.champion, self.shadow = self.shadow, None
        self.since_publish = max(self.since_publish, 1)

    def next_version(self, now_ms: int | None = None) -> int:
        """Versions are wall-clock milliseconds, monotonic across trainer restarts (replay
        passes now_ms=0 for plain 1, 2, 3... and reproducible output)."""
        clock = int(time.time() * 1000) if now_ms is None else now_ms
        self.version = max(self.version + 1, clock)
        self.since_publish = 0
        return self.version

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "champion": {"name": self.champion.name, **self.champion.metrics()},
            "shadow": None,
            "version": self.version,
            "examples": {"not_churned": self.labels[0], "churned": self.labels[1]},
        }
        if self.shadow is not None:
            out["shadow"] = {"name": self.shadow.name, **self.shadow.metrics()}
        return out


class Predictor:
    """The champion model a scorer predicts with; replaced whole when a new version arrives."""

    def __init__(self) -> None:
        self.model: Any | None = None
        self.name = ""
        self.version = 0

    def load(self, model: Any, name: str, version: int) -> bool:
        if version <= self.version:
            return False
        self.model, self.name, self.version = model, name, version
        return True

    def tag(self) -> str | None:
        return f"{self.name}@{self.version}" if self.model is not None else None

    def predict(self, vector: Sequence[float]) -> float | None:
        if self.model is None:
            return None
        proba = self.model.predict_proba_one(as_features(vector))
        return float(proba.get(True, 0.0))
