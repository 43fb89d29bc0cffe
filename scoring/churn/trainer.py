"""Online training with progressive validation, a champion and an optional shadow.

Every example is first *predicted* by each model (scored into ROC AUC, log loss, Brier, a
calibration window and a drift detector), then *learned*: the metrics are honest
out-of-sample figures. Champion and shadow see the same examples, and from the moment a
shadow starts both are also scored side by side on exactly those examples (`comparison`), so
the two can be compared on the same window whatever the champion learned before.

**Labels are learned at observed + horizon**, not when they resolve: a return resolves its
point early and a churn only at the deadline, so learning on resolution would always show the
model more returns than churns for the latest horizon of points. Examples wait in a buffer
(returns of the last horizon) until the trainer's event-time clock — the newest resolution
time it has seen — passes their release time.

Each example is learned once, whatever restarts happen around it: an artifact records the
examples-topic offset consumed through, the clock, and where the oldest waiting example is
(`resume_from`); a restarted trainer reads from there again, skips an example released before
the clock it saved (learned already) and holds the others again. The ids of the latest
`RECENT_IDS` examples catch a copy a scorer sent again after its own crash.

BG/NBD's parameters are refitted every `refit_days` of event time from a bottom-k sample of
the customers' summaries that examples carry (scoring.churn.customer_sample); they travel with
each model version, and scorers compute the features with them.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import inspect
import math
import time
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from river import drift as river_drift
from river import metrics as river_metrics

from scoring.churn.config import ChurnConfig
from scoring.churn.customer_sample import CustomerSample
from scoring.churn.evaluation import calibration_table, expected_calibration_error
from scoring.churn.layout import FEATURE_LAYOUT, FEATURE_NAMES
from scoring.churn.priors import PopulationParams, params_as_meta
from scoring.churn.priors import params_from_meta as params_from_meta  # streams' import
from scoring.churn.registry import build_model
from scoring.records import ChurnExample
from scoring.timeutil import MS_PER_DAY, parse_rfc3339_ms

RECENT_IDS = 10_000
CALIBRATION_WINDOW = 10_000  # the latest examples behind the ECE gauge
_EPS = 1e-7


class ExampleRefused(ValueError):
    """An example this trainer cannot learn (another feature layout, a missing field)."""


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


class ProgressiveMetrics:
    """Out-of-sample figures of one model over the examples it was asked about."""

    def __init__(self) -> None:
        self.auc = river_metrics.ROCAUC()
        self.logloss = river_metrics.LogLoss()
        self.brier = Brier()
        self.recent: deque[tuple[float, int]] = deque(maxlen=CALIBRATION_WINDOW)
        self.drift = river_drift.ADWIN()
        self.drifts = 0
        self.validated = 0

    def update(self, y: bool, p: float) -> None:
        p = min(1.0 - _EPS, max(_EPS, p))
        self.auc.update(y, p)
        self.logloss.update(y, p)
        self.brier.update(y, p)
        self.recent.append((p, int(y)))
        self.drift.update(-math.log(p if y else 1.0 - p))
        if self.drift.drift_detected:
            self.drifts += 1
        self.validated += 1

    def ece(self) -> float | None:
        """Expected calibration error by decile over the latest CALIBRATION_WINDOW examples."""
        if not self.recent:
            return None
        ps, ys = zip(*self.recent, strict=True)
        return expected_calibration_error(calibration_table(ps, ys))

    def as_dict(self) -> dict[str, float | int | None]:
        """The figures, rounded; None for each one while there is nothing to measure."""
        if not self.validated:
            return {"roc_auc": None, "log_loss": None, "brier": None, "ece": None,
                    "recent_log_loss": None, "drifts": 0, "validated": 0}
        ece = self.ece()
        return {
            "roc_auc": round(float(self.auc.get()), 4) + 0.0,
            "log_loss": round(float(self.logloss.get()), 4) + 0.0,
            "brier": round(self.brier.get(), 4) + 0.0,
            "ece": None if ece is None else round(ece, 4) + 0.0,
            "recent_log_loss": round(float(self.drift.estimation), 4) + 0.0,
            "drifts": self.drifts,
            "validated": self.validated,
        }


def _takes_weight(model: Any) -> bool:
    """Whether learn_one accepts a sample weight `w` (river's classifiers do)."""
    try:
        params = inspect.signature(model.learn_one).parameters
    except (TypeError, ValueError):
        return False
    return "w" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class ModelSlot:
    """One model with its own progressive-validation metrics."""

    def __init__(self, name: str, model: Any | None = None) -> None:
        self.name = name
        self.model = model if model is not None else build_model(name)
        self.reset_metrics()
        self.learned = 0
        self._weighted = _takes_weight(self.model)

    def reset_metrics(self) -> None:
        self.metrics = ProgressiveMetrics()

    @property
    def validated(self) -> int:
        return self.metrics.validated

    def predict(self, x: Mapping[str, float]) -> float:
        proba = self.model.predict_proba_one(dict(x))
        return float(proba.get(True, 0.0))

    def learn(
        self, x: dict[str, float], y: bool, w: float = 1.0, validate: bool = True
    ) -> float | None:
        """Predict (when validating), then learn; returns the prediction made."""
        p = None
        if validate:
            p = self.predict(x)
            self.metrics.update(y, p)
        if self._weighted:
            self.model.learn_one(x, y, w=w)
        else:
            self.model.learn_one(x, y)
        self.learned += 1
        return p

    def summary(self) -> dict[str, float | int | None]:
        return self.metrics.as_dict()


class Comparison:
    """Champion and shadow scored on the same examples, from the moment the shadow started
    (or the champion changed under it): a paired comparison on one window."""

    def __init__(self, champion: str, shadow: str) -> None:
        self.champion_name, self.shadow_name = champion, shadow
        self.champion = ProgressiveMetrics()
        self.shadow = ProgressiveMetrics()
        self.shadow_better = 0  # examples on which the shadow's log loss was lower

    def update(self, y: bool, p_champion: float, p_shadow: float) -> None:
        self.champion.update(y, p_champion)
        self.shadow.update(y, p_shadow)
        if abs(float(y) - p_shadow) < abs(float(y) - p_champion):
            self.shadow_better += 1

    def as_dict(self) -> dict[str, Any]:
        n = self.champion.validated
        return {
            "examples": n,
            "champion": {"name": self.champion_name, **self.champion.as_dict()},
            "shadow": {"name": self.shadow_name, **self.shadow.as_dict()},
            "shadow_better_share": round(self.shadow_better / n, 4) if n else None,
        }


def example_id(example: Mapping[str, Any]) -> int | None:
    """A 64-bit id of an example: its user and observation time (None without them)."""
    user, observed = example.get("user_id"), example.get("observed_at")
    if user is None or observed is None:
        return None
    return _id(str(user), str(observed))


def _id(user: str, observed: str) -> int:
    text = f"{user}|{observed}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def as_features(vector: Sequence[float]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector, strict=True))


_NAMES = frozenset(FEATURE_NAMES)


class _Waiting:
    """An example waiting for its release time; the heap holds (release_ms, seq, _Waiting),
    ordered by release time, then by arrival (tuples compare in C, without a __lt__ call)."""

    __slots__ = ("eid", "label", "offset", "release_ms", "seq", "values", "weight")

    def __init__(self, release_ms: int, seq: int, eid: int, offset: int | None,
                 values: array[float], label: bool, weight: float) -> None:
        self.release_ms, self.seq, self.eid, self.offset = release_ms, seq, eid, offset
        self.values, self.label, self.weight = values, label, weight


class ChurnTrainer:
    """Learns from resolved examples at their release time; swaps, shadows, promotes and
    rolls back models on command; refits BG/NBD from the customers' summaries."""

    def __init__(
        self,
        champion: str = "lifetime",
        shadow: str = "",
        buffer_size: int = 5000,
        min_per_class: int = 0,
        horizon_days: float = 14.0,
        refit_days: float = 7.0,
        sample_users: int = 10_000,
        validate: bool = True,
    ) -> None:
        self.champion = ModelSlot(champion)
        self.shadow: ModelSlot | None = ModelSlot(shadow) if shadow else None
        self.comparison = Comparison(champion, shadow) if shadow else None
        self.buffer: deque[tuple[dict[str, float], bool, float]] = deque(maxlen=buffer_size)
        self.labels = {0: 0, 1: 0}
        self.version = 0
        self.since_publish = 0
        self.min_per_class = min_per_class
        self.horizon_ms = round(horizon_days * MS_PER_DAY)
        self.refit_ms = round(refit_days * MS_PER_DAY)
        self.learned_through = -1  # offset of the last example consumed (examples topic)
        self.clock_ms = 0  # newest resolution time seen (event time)
        self.saved_clock_ms = -1  # the clock an artifact restored this trainer to
        self.recent: deque[int] = deque(maxlen=RECENT_IDS)
        self._recent_set: set[int] = set()
        self.waiting: list[tuple[int, int, _Waiting]] = []
        self._waiting_ids: set[int] = set()
        self._seq = 0
        self.skipped = 0  # examples recognised as already learned
        self.weight_total = 0.0
        self.weight_count = 0
        self.sample = CustomerSample(sample_users)
        self.params: PopulationParams | None = None
        self.fitted_at_ms = 0
        # progressive validation (a prediction and the metrics' update before each example
        # is learned) only feeds status(): off where nobody reads it (a backtest measures at
        # its cut-off); what the models learn is the same either way
        self.validate = validate

    @classmethod
    def from_config(
        cls, c: ChurnConfig, min_per_class: int = 0, validate: bool = True
    ) -> ChurnTrainer:
        return cls(
            c.model, c.shadow, min_per_class=min_per_class, horizon_days=c.horizon_days,
            refit_days=c.bgnbd_refit_days, sample_users=c.bgnbd_sample_users,
            validate=validate,
        )

    # -- examples in ------------------------------------------------------------------------

    def learn(self, example: Mapping[str, Any] | ChurnExample, offset: int | None = None) -> int:
        """Take one resolved example; returns how many examples were learned now (this one
        and any whose release time the clock passed), 0 when it was learned before."""
        if isinstance(example, ChurnExample):
            user, observed, resolved = example.user_id, example.observed_at, example.resolved_at
            features, label, weight = example.features, example.label, example.weight
            customer: Any = example.customer
        else:
            try:
                user, observed = str(example["user_id"]), str(example["observed_at"])
                resolved, features = str(example["resolved_at"]), example["features"]
                label, weight = int(example["label"]), float(example.get("weight", 1.0))
            except (KeyError, TypeError, ValueError) as exc:
                raise ExampleRefused(f"not a churn example: {exc!r}") from None
            customer = example.get("customer")
        if features.keys() != _NAMES:
            raise ExampleRefused(
                f"example features are not feature layout {FEATURE_LAYOUT} "
                f"({sorted(set(features) ^ _NAMES)[:4]} differ)"
            )
        release = parse_rfc3339_ms(observed) + self.horizon_ms
        eid = _id(user, observed)
        if offset is not None:
            if offset <= self.learned_through:
                if release <= self.saved_clock_ms or eid in self._waiting_ids:
                    self.skipped += 1  # learned (or waiting) before the restart
                else:
                    self._wait(release, eid, offset, features, label, weight)
                return 0
            self.learned_through = offset
        if eid in self._recent_set or eid in self._waiting_ids:
            self.skipped += 1
            return 0
        resolved_ms = parse_rfc3339_ms(resolved)
        if resolved_ms > self.clock_ms:
            self.clock_ms = resolved_ms
        if customer is not None:
            self.sample.update(user, customer)
        self._wait(release, eid, offset, features, label, weight)
        return self.release()

    def _wait(self, release: int, eid: int, offset: int | None, features: Mapping[str, float],
              label: int, weight: float) -> None:
        self._seq += 1
        values = array("d", [float(features[n]) for n in FEATURE_NAMES])
        waiting = _Waiting(release, self._seq, eid, offset, values, bool(label), weight)
        heapq.heappush(self.waiting, (release, self._seq, waiting))
        self._waiting_ids.add(eid)

    def release(self) -> int:
        """Learn every waiting example whose release time the clock has reached."""
        learned = 0
        waiting = self.waiting
        while waiting and waiting[0][0] <= self.clock_ms:
            w = heapq.heappop(waiting)[2]
            self._waiting_ids.discard(w.eid)
            if len(self.recent) == self.recent.maxlen:
                self._recent_set.discard(self.recent[0])
            self.recent.append(w.eid)
            self._recent_set.add(w.eid)
            self._learn(dict(zip(FEATURE_NAMES, w.values, strict=True)), w.label, w.weight)
            learned += 1
        if self.clock_ms >= self.fitted_at_ms + self.refit_ms or (
            self.params is None and self.clock_ms >= self.fitted_at_ms + MS_PER_DAY
        ):
            self.refit(self.clock_ms)
        return learned

    def refit(self, now_ms: int) -> PopulationParams | None:
        """Fit BG/NBD and MBG/NBD on the customer sample now (keeps the old parameters when
        it cannot)."""
        self.fitted_at_ms = now_ms
        params = self.sample.fit(now_ms, self.params)
        if params is not None:
            self.params = params
        return self.params

    @property
    def resume_from(self) -> int:
        """The first examples-topic offset a restarted trainer must read again."""
        offsets = [w.offset for _, _, w in self.waiting if w.offset is not None]
        return min(offsets) if offsets else self.learned_through + 1

    @property
    def publishable(self) -> bool:
        """Both labels seen often enough for the model's probabilities to mean something."""
        return min(self.labels.values()) >= self.min_per_class

    def _learn(self, x: dict[str, float], y: bool, weight: float) -> None:
        # weights (days of silence a point stands for) relative to their running mean, so
        # that they set the balance between examples, not the size of the steps
        self.weight_total += weight
        self.weight_count += 1
        w = weight * self.weight_count / self.weight_total if self.weight_total > 0 else 1.0
        self.labels[int(y)] += 1
        p_champion = self.champion.learn(x, y, w, self.validate)
        if self.shadow is not None:
            p_shadow = self.shadow.learn(x, y, w, self.validate)
            if self.comparison is not None and p_champion is not None and p_shadow is not None:
                self.comparison.update(y, p_champion, p_shadow)
        self.buffer.append((x, y, w))
        self.since_publish += 1

    # -- what survives a restart ------------------------------------------------------------

    def memory(self) -> dict[str, Any]:
        """What an artifact carries so a restarted trainer learns nothing twice or never."""
        ids = b"".join(i.to_bytes(8, "big") for i in self.recent)
        return {
            "learned_through": self.learned_through,
            "resume_from": self.resume_from,
            "clock_ms": self.clock_ms,
            "recent_ids": base64.b64encode(ids).decode("ascii"),
            "labels": [self.labels[0], self.labels[1]],
            "weights": [self.weight_total, self.weight_count],
            "customers": self.sample.encode(),
            "fitted_at_ms": self.fitted_at_ms,
        }

    def restore(self, meta: Mapping[str, Any]) -> None:
        self.learned_through = int(meta.get("learned_through", -1))
        self.clock_ms = self.saved_clock_ms = int(meta.get("clock_ms", -1))
        raw = base64.b64decode(str(meta.get("recent_ids", "")))
        self.recent.clear()
        self.recent.extend(
            int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw) - 7, 8)
        )
        self._recent_set = set(self.recent)
        labels = meta.get("labels")
        if isinstance(labels, list) and len(labels) == 2:
            self.labels = {0: int(labels[0]), 1: int(labels[1])}
        weights = meta.get("weights")
        if isinstance(weights, list) and len(weights) == 2:
            self.weight_total, self.weight_count = float(weights[0]), int(weights[1])
        if meta.get("customers"):
            self.sample = CustomerSample.decode(str(meta["customers"]), self.sample.size)
        self.fitted_at_ms = int(meta.get("fitted_at_ms", 0))
        self.params = params_from_meta(meta)

    # -- commands ---------------------------------------------------------------------------

    def _warm(self, slot: ModelSlot) -> ModelSlot:
        for x, y, w in self.buffer:
            slot.learn(x, y, w, validate=False)
        return slot

    def swap(self, name: str) -> None:
        """Replace the champion by a fresh `name`, warm-started on the recent examples."""
        self.set_champion(self._warm(ModelSlot(name)))

    def set_champion(self, slot: ModelSlot) -> None:
        """A new champion (swap, rollback): published at once; a running comparison with
        the shadow starts again on the new pair."""
        self.champion = slot
        if self.shadow is not None:
            self.comparison = Comparison(slot.name, self.shadow.name)
        self.since_publish = max(self.since_publish, 1)

    def start_shadow(self, name: str) -> None:
        self.shadow = self._warm(ModelSlot(name))
        self.comparison = Comparison(self.champion.name, name)

    def promote(self) -> None:
        """The shadow becomes the champion (keeping what it learned and its metrics)."""
        if self.shadow is None:
            raise ValueError("there is no shadow model to promote")
        self.champion, self.shadow, self.comparison = self.shadow, None, None
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
            "champion": {"name": self.champion.name, **self.champion.summary()},
            "shadow": None,
            "comparison": self.comparison.as_dict() if self.comparison is not None else None,
            "version": self.version,
            "examples": {"not_churned": self.labels[0], "churned": self.labels[1]},
            "waiting": len(self.waiting),
            **params_as_meta(self.params),
        }
        if self.shadow is not None:
            out["shadow"] = {"name": self.shadow.name, **self.shadow.summary()}
        return out

    def artifact_meta(self) -> dict[str, Any]:
        """What describes the champion's model in an artifact (not the trainer's memory)."""
        return {
            "name": self.champion.name, "learned": self.champion.learned,
            "metrics": self.champion.summary(), "layout": FEATURE_LAYOUT,
            "features": list(FEATURE_NAMES), **params_as_meta(self.params),
        }


class Predictor:
    """The champion model a scorer predicts with, and the BG/NBD parameters its features
    use; replaced whole when a new version arrives."""

    def __init__(self) -> None:
        self.model: Any | None = None
        self.name = ""
        self.version = 0
        self.params: PopulationParams | None = None

    def load(
        self, model: Any, name: str, version: int, params: PopulationParams | None = None
    ) -> bool:
        if version <= self.version:
            return False
        self.model, self.name, self.version, self.params = model, name, version, params
        return True

    def tag(self) -> str | None:
        return f"{self.name}@{self.version}" if self.model is not None else None

    def bgnbd(self) -> PopulationParams | None:
        """The population models' parameters (BG/NBD and MBG/NBD) the features use."""
        return self.params

    def predict(self, vector: Sequence[float]) -> float | None:
        if self.model is None:
            return None
        proba = self.model.predict_proba_one(as_features(vector))
        return float(proba.get(True, 0.0))
