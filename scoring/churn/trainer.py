"""Online training with progressive validation, a champion and an optional shadow.

Every resolved example is first *predicted* by each model (scored into ROC AUC, log loss
and Brier score), then *learned*: the metrics are honest out-of-sample figures. A recent
example buffer warm-starts a newly swapped-in or shadow model so it is not cold on arrival.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from river import metrics as river_metrics

from scoring.churn.registry import build_model
from scoring.features import FEATURE_NAMES


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


def as_features(vector: Sequence[float]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector, strict=True))


class ChurnTrainer:
    """Learns from resolved examples; swaps, shadows and promotes models on command."""

    def __init__(self, champion: str = "logreg", shadow: str = "", buffer_size: int = 5000) -> None:
        self.champion = ModelSlot(champion)
        self.shadow: ModelSlot | None = ModelSlot(shadow) if shadow else None
        self.buffer: deque[tuple[dict[str, float], bool]] = deque(maxlen=buffer_size)
        self.labels = {0: 0, 1: 0}
        self.version = 0
        self.since_publish = 0

    def learn(self, example: Mapping[str, Any]) -> None:
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
