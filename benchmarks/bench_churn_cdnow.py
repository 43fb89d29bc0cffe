"""Online churn on real purchase history (CDNOW) vs recency and BG/NBD, at several cut-offs.

The online setting, simulated in event time: purchases arrive in time order; each one resolves
the customer's open observation points and schedules new ones on a log scale of silence
(scoring/churn/schedule.py); sweeps come only when a point's horizon passes. Examples carry the
lifetime features (scoring/churn/lifetime.py) recomputed at the point from the unchanged state,
with BG/NBD features from parameters refitted every week on the summaries seen so far. A river
logistic regression learns each example (after predicting it, for progressive validation and
for the Platt calibrator). At each cut-off the model as it stands scores every customer in the
population; the label is "no purchase in (cut-off, cut-off + horizon]". In the same run: days
since the last purchase alone, and BG/NBD fitted on everything before the cut-off, ranked by
its own P(no purchase within the horizon).

One pass per horizon (the label's horizon is the engine's setting); every cut-off with
cut-off + horizon inside the data is evaluated in that pass.

`--engine` measures the engine itself instead: `engage backtest` (streams/backtest.py, the
default rules and model) at every cut-off x horizon of each `--dataset` (comma-separated), one
replay per cell, `--jobs` at a time, and prints engage's default next to recency only, BG/NBD
and MBG/NBD with the paired ROC AUC differences (DeLong 95 % intervals, scoring/churn/paired.py):

    python -m benchmarks.bench_churn_cdnow --engine --dataset sample,master [--jobs 2]
        [--horizons 30,60,90] [--cutoffs ...] [--json FILE]

    python -m benchmarks.bench_churn_cdnow [--dataset sample|master] [--horizons 30,60,90]
        [--cutoffs 1997-06-30,1997-09-30,1997-12-31,1998-03-31] [--population all|active]
        [--active-days 90] [--return-event any|paid] [--weighting octave|none]
        [--release horizon|resolution] [--calibration none|platt]
        [--model offset|offset-gate|offset-all-corrections|offset-bgnbd|offset-bgnbd-no-gate|
                 logreg|mbgnbd] [--also MODEL,...]
        [--with-current-engine] [--with-batch-fit] [--json FILE]
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from benchmarks.datasets import Purchase, load_cdnow
from scoring.churn.bgnbd import BgNbdParams, fit_bgnbd, probability_no_purchase
from scoring.churn.calibration import PlattCalibrator
from scoring.churn.evaluation import scorecard
from scoring.churn.lifetime import (
    LIFETIME_FEATURE_NAMES,
    LifetimeConfig,
    LifetimeState,
    lifetime_features,
    observe,
    summary_at,
)
from scoring.churn.lifetime_model import (
    BGNBD_PRIOR_ECHOES,
    TIME_SUPPORT,
    lifetime_logreg,
    lifetime_offset_logreg,
    mbgnbd_churn,
)
from scoring.churn.mbgnbd import fit_mbgnbd
from scoring.churn.priors import PopulationParams
from scoring.churn.schedule import ObservationSchedule
from scoring.timeutil import MS_PER_DAY

DATASETS = {"sample": "CDNOW_sample.txt", "master": "CDNOW_master.txt"}
DEFAULT_CUTOFFS = "1997-06-30,1997-09-30,1997-12-31,1998-03-31"
REFIT_EVERY_DAYS = 7
MIN_REPEATERS_TO_FIT = 30
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Options:
    horizon_days: int
    population: str = "all"  # all: everyone seen before the cut-off; active: seen recently
    active_days: int = 90
    return_event: str = "any"  # any purchase, or paid: only purchases with an amount > 0
    weighting: str = "octave"  # octave: Horvitz-Thompson weights of the points; none
    release: str = "horizon"  # learn a point at observed + horizon, or as soon as resolved
    calibration: str = "none"
    max_silence_days: float = 730.0
    model: str = "offset"
    batch_fit: bool = False  # also fit the same corrections in batch on every example learned
    also: tuple[str, ...] = ()  # other MODELS learning the same examples, scored alongside


@dataclass
class Snapshot:
    cutoff: date
    users: list[str]
    model: list[float]
    recency: list[float]
    bgnbd: list[float]
    params: BgNbdParams
    learned: int
    labels: list[int] = field(default_factory=list)
    engage_today: list[float] | None = None  # the engine's churn_probability (daily design)
    batch_fit: list[float] | None = None  # the corrections fitted in batch (no online noise)
    others: dict[str, list[float]] = field(default_factory=dict)  # Options.also's scores


@dataclass
class Customer:
    state: LifetimeState = field(default_factory=LifetimeState)
    resolved: int = 0  # of the current anchor's observation points, labelled churned already
    due_ms: int | None = None


MODELS = {
    "offset": lifetime_offset_logreg,  # the default: MBG/NBD prior, corrections, no gate
    "offset-gate": lambda: lifetime_offset_logreg(support=TIME_SUPPORT),
    "offset-all-corrections": lambda: lifetime_offset_logreg(ignore=()),
    # the previous default (layout 2): BG/NBD prior, corrections gated on labelled ages
    "offset-bgnbd": lambda: lifetime_offset_logreg(
        support=TIME_SUPPORT, ignore=BGNBD_PRIOR_ECHOES, prior="bgnbd_logit_return"
    ),
    "offset-bgnbd-no-gate": lambda: lifetime_offset_logreg(
        ignore=BGNBD_PRIOR_ECHOES, prior="bgnbd_logit_return"
    ),
    "logreg": lifetime_logreg,
    "mbgnbd": mbgnbd_churn,  # the default's prior alone (learns nothing)
}


def day_ms(d: date) -> int:
    return (d - EPOCH).days * MS_PER_DAY


def events_of(purchases: Sequence[Purchase], return_event: str) -> list[tuple[int, str, float]]:
    """(ts_ms, customer, amount) in time order; rows of one day get increasing milliseconds."""
    rows = [p for p in purchases if return_event == "any" or p.amount > 0]
    rows.sort(key=lambda p: (p.day, p.customer))
    out = []
    seq: dict[tuple[date, str], int] = {}
    for p in rows:
        k = seq.get((p.day, p.customer), 0)
        seq[(p.day, p.customer)] = k + 1
        out.append((day_ms(p.day) + 1 + k, p.customer, p.amount))
    return out


class OnlineChurn:
    """Customers' lifetime state, observation points, delayed labels and the online model."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.config = LifetimeConfig(float(options.horizon_days))
        self.schedule = ObservationSchedule(float(options.horizon_days), options.max_silence_days)
        self.customers: dict[str, Customer] = {}
        self.model = MODELS[options.model]()
        self.others = {name: MODELS[name]() for name in options.also}
        self.calibrator = PlattCalibrator() if options.calibration == "platt" else None
        self.params: PopulationParams | None = None
        self.actions: list[tuple[int, int, int, Any]] = []  # (time, kind order, seq, payload)
        self.seq = 0
        self.learned = 0
        self.points = 0
        self.sweeps = 0
        self.snapshots: list[Snapshot] = []
        self.examples: list[tuple[dict[str, float], int, float]] = []  # with batch_fit only

    # -- time -------------------------------------------------------------------------------

    def _at(self, when: int, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.actions, (when, kind, self.seq, payload))

    def advance(self, to_ms: int) -> None:
        """Run every sweep, label release, refit and cut-off due at or before `to_ms`."""
        while self.actions and self.actions[0][0] <= to_ms:
            when, kind, _seq, payload = heapq.heappop(self.actions)
            if kind == 0:
                self._sweep(payload, when)
            elif kind == 1:
                self._learn(*payload)
            elif kind == 2:
                self._refit(when)
                self._at(when + REFIT_EVERY_DAYS * MS_PER_DAY, 2, None)
            else:
                self._snapshot(payload, when)

    # -- events and sweeps ------------------------------------------------------------------

    def event(self, ts_ms: int, user: str, amount: float) -> None:
        self.advance(ts_ms)
        c = self.customers.get(user)
        if c is None:
            c = self.customers[user] = Customer()
        else:
            for done in self.schedule.on_event(user, c.state.last_ms, c.resolved, ts_ms):
                self._resolved(c, done.point.observed_ms, done.label, done.point.weight)
        observe(c.state, ts_ms, amount, self.config)
        c.resolved = 0
        self._schedule_sweep(user, c)

    def _schedule_sweep(self, user: str, c: Customer) -> None:
        c.due_ms = self.schedule.next_due_ms(user, c.state.last_ms, c.resolved)
        if c.due_ms is not None:
            self._at(c.due_ms, 0, user)

    def _sweep(self, user: str, when: int) -> None:
        c = self.customers[user]
        if c.due_ms != when:
            return  # superseded by a later event
        self.sweeps += 1
        churned, c.resolved = self.schedule.on_watermark(
            user, c.state.last_ms, c.resolved, when
        )
        for done in churned:
            self._resolved(c, done.point.observed_ms, 1, done.point.weight)
        self._schedule_sweep(user, c)

    def _resolved(self, c: Customer, observed_ms: int, label: int, weight: float) -> None:
        self.points += 1
        x = dict(zip(LIFETIME_FEATURE_NAMES, self._features(c, observed_ms), strict=True))
        w = weight if self.options.weighting == "octave" else 1.0
        if self.options.release == "horizon":
            self._at(observed_ms + self.schedule.horizon_ms, 1, (x, label, w))
        else:
            self._learn(x, label, w)

    def _features(self, c: Customer, now_ms: int) -> list[float]:
        return lifetime_features(c.state, now_ms, self.config, self.params)

    def _learn(self, x: dict[str, float], label: int, weight: float) -> None:
        if self.calibrator is not None:
            self.calibrator.learn(self._raw(x), label, weight)
        self.model.learn_one(x, bool(label), w=weight)
        for other in self.others.values():
            other.learn_one(x, bool(label), w=weight)
        self.learned += 1
        if self.options.batch_fit:
            self.examples.append((x, label, weight))

    def _raw(self, x: dict[str, float]) -> float:
        return float(self.model.predict_proba_one(x).get(True, 0.0))

    def predict(self, x: dict[str, float]) -> float:
        p = self._raw(x)
        return self.calibrator.calibrate(p) if self.calibrator is not None else p

    # -- BG/NBD and cut-offs ----------------------------------------------------------------

    def _fit_now(
        self, now_ms: int, initial: PopulationParams | None
    ) -> PopulationParams | None:
        rows = [summary_at(c.state, now_ms) for c in self.customers.values()]
        if sum(1 for r in rows if r.frequency > 0) < MIN_REPEATERS_TO_FIT:
            return None
        xs, txs, ts = [r.frequency for r in rows], [r.recency for r in rows], [r.age for r in rows]
        fit = fit_bgnbd(xs, txs, ts, initial=None if initial is None else initial.bgnbd)
        mfits = [fit_mbgnbd(xs, txs, ts)]
        if initial is not None and initial.mbgnbd is not None:
            mfits.append(fit_mbgnbd(xs, txs, ts, initial=initial.mbgnbd))
        return PopulationParams(fit.params, max(mfits, key=lambda f: f.log_likelihood).params)

    def _refit(self, now_ms: int) -> None:
        self.params = self._fit_now(now_ms, self.params) or self.params

    def _snapshot(self, cutoff: date, now_ms: int) -> None:
        params = self._fit_now(now_ms, None)
        if params is None:
            raise RuntimeError(f"too few repeat customers before {cutoff} to fit BG/NBD")
        self.params = params  # the model's features use the parameters of the day, too
        h = float(self.options.horizon_days)
        snap = Snapshot(cutoff, [], [], [], [], params.bgnbd, self.learned)
        rows: list[dict[str, float]] = []
        for user, c in self.customers.items():
            recency = (now_ms - c.state.last_ms) / MS_PER_DAY
            if self.options.population == "active" and recency > self.options.active_days:
                continue
            s = summary_at(c.state, now_ms)
            x = dict(zip(LIFETIME_FEATURE_NAMES, self._features(c, now_ms), strict=True))
            snap.users.append(user)
            snap.model.append(self.predict(x))
            for name, other in self.others.items():
                p = float(other.predict_proba_one(x).get(True, 0.0))
                snap.others.setdefault(name, []).append(p)
            snap.recency.append(recency)
            snap.bgnbd.append(
                probability_no_purchase(params.bgnbd, h, s.frequency, s.recency, s.age)
            )
            rows.append(x)
        if self.options.batch_fit:
            snap.batch_fit = batch_correction(self.examples, rows)
        self.snapshots.append(snap)

    def at_cutoff(self, cutoff: date) -> None:
        self._at(day_ms(cutoff + timedelta(days=1)), 3, cutoff)


def batch_correction(
    examples: list[tuple[dict[str, float], int, float]], rows: list[dict[str, float]]
) -> list[float]:
    """What the offset model's corrections can give without online noise: the same linear
    corrections on the same prior, fitted exactly (L-BFGS, same L2) on every example learned
    so far, features standardised and clipped to their range, no support gate."""
    import numpy as np
    from scipy import optimize

    from scoring.churn.lifetime_model import PRIOR_ECHOES

    prior_name = "mbgnbd_logit_return"
    names = [n for n in LIFETIME_FEATURE_NAMES if n not in PRIOR_ECHOES and n != prior_name]
    x = np.array([[e[0][n] for n in names] for e in examples])
    y = np.array([e[1] for e in examples], dtype=float)
    w = np.array([e[2] for e in examples])
    w = w / w.mean()
    offset = -np.array([e[0][prior_name] for e in examples])
    mean, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / sd
    l2 = 1e-3

    def loss(b: Any) -> tuple[float, Any]:
        eta = offset + b[0] + z @ b[1:]
        residual = w * (1.0 / (1.0 + np.exp(-eta)) - y)
        value = float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta))) / len(y)
        grad = np.concatenate([[residual.sum()], z.T @ residual]) / len(y)
        return value + l2 * float(b[1:] @ b[1:]), grad + np.concatenate([[0.0], 2 * l2 * b[1:]])

    b = optimize.minimize(loss, np.zeros(len(names) + 1), jac=True, method="L-BFGS-B").x
    low, high = x.min(axis=0), x.max(axis=0)
    out = []
    for row in rows:
        v = (np.clip(np.array([row[n] for n in names]), low, high) - mean) / sd
        out.append(float(1.0 / (1.0 + np.exp(row[prior_name] - b[0] - v @ b[1:]))))
    return out


def run_horizon(
    events: list[tuple[int, str, float]], cutoffs: list[date], options: Options
) -> tuple[OnlineChurn, float]:
    online = OnlineChurn(options)
    for cutoff in cutoffs:
        online.at_cutoff(cutoff)
    online._at(events[0][0] + REFIT_EVERY_DAYS * MS_PER_DAY, 2, None)
    started = time.perf_counter()
    last_cut = max(day_ms(c + timedelta(days=1)) for c in cutoffs)
    for ts, user, amount in events:
        if ts > last_cut:
            break
        online.event(ts, user, amount)
    online.advance(last_cut)
    elapsed = time.perf_counter() - started
    horizon_ms = options.horizon_days * MS_PER_DAY
    for snap in online.snapshots:
        start = day_ms(snap.cutoff + timedelta(days=1))
        returned = {u for ts, u, _ in events if start < ts <= start + horizon_ms}
        snap.labels = [0 if u in returned else 1 for u in snap.users]
    return online, elapsed


def score_with_current_engine(
    purchases: Sequence[Purchase], snapshots: list[Snapshot], horizon_days: int
) -> None:
    """Today's engine (daily observations, 7/28-day features, default model) replayed to each
    cut-off on the same purchases (dates shifted into its time range): its churn_probability."""
    from benchmarks.bench_churn_cost import CDNOW_SHIFT_DAYS, cdnow_events, write_events
    from benchmarks.common import CACHE
    from scoring.config import config_from_dict
    from streams.replay import run_replay

    first = min(p.day for p in purchases).isoformat()
    path = write_events(
        CACHE / f"cdnow-{len(purchases)}-{first}-events.jsonl.gz", cdnow_events(purchases)
    )
    config = config_from_dict({"churn": {"horizon_days": float(horizon_days)}})
    for snap in snapshots:
        cut = day_ms(snap.cutoff + timedelta(days=1 + CDNOW_SHIFT_DAYS))
        replay = run_replay(path, config, as_of=cut - 1, progress=False, triggers=False)
        scores = []
        for user in snap.users:
            record = replay.engine.score_record(replay.states[f"c{user}"], f"c{user}", cut)
            p = record.churn_probability
            scores.append(0.5 if p is None else float(p))
        snap.engage_today = scores


def evaluate(snap: Snapshot) -> dict[str, Any]:
    y = snap.labels
    return {
        "cutoff": snap.cutoff.isoformat(),
        "customers": len(y),
        "churn_rate": sum(y) / len(y),
        "examples_learned": snap.learned,
        "bgnbd_params": {k: round(getattr(snap.params, k), 4) for k in ("r", "alpha", "a", "b")},
        "engage_lifetime": scorecard(snap.model, y, True),
        "recency_only": scorecard(snap.recency, y, False),
        "bgnbd": scorecard(snap.bgnbd, y, True),
        **({"engage_today": scorecard(snap.engage_today, y, True)} if snap.engage_today else {}),
        **({"batch_fit": scorecard(snap.batch_fit, y, True)} if snap.batch_fit else {}),
        **{f"also:{name}": scorecard(p, y, True) for name, p in snap.others.items()},
    }


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        "| cut-off | horizon | customers | churn rate | scorer | ROC AUC | PR AUC | Brier | ECE "
        "| lift@10% | lift@20% |"
    )
    print(head)
    print("|" + "---|" * 11)
    for row in rows:
        also = [k for k in row if k.startswith("also:")]
        for name in ("engage_lifetime", "recency_only", "bgnbd", "engage_today", "batch_fit",
                     *also):
            if name not in row:
                continue
            m = row[name]
            print(
                f"| {row['cutoff']} | {row['horizon_days']} d | {row['customers']} "
                f"| {row['churn_rate']:.3f} | {name} | {_fmt(m['roc_auc'])} | {_fmt(m['pr_auc'])} "
                f"| {_fmt(m.get('brier'))} | {_fmt(m.get('ece'))} | {_fmt(m['lift10'], 2)} "
                f"| {_fmt(m['lift20'], 2)} |"
            )


def engine_cell(dataset: str, cutoff: str, horizon: int) -> dict[str, Any]:
    """One `engage backtest` of a CDNOW file at a cut-off and horizon, default rules."""
    import tempfile
    from pathlib import Path

    import msgspec

    from benchmarks.datasets import dataset_path
    from scoring.config import load_config
    from streams.backtest import _purchases_as_events, backtest, parse_cutoff

    config = load_config(None)
    config = msgspec.structs.replace(
        config, churn=msgspec.structs.replace(config.churn, horizon_days=float(horizon))
    )
    with tempfile.TemporaryDirectory(prefix="bench-churn-cdnow-") as tmp:
        path = str(dataset_path(DATASETS[dataset]))
        events, config = _purchases_as_events(path, config, Path(tmp))
        started = time.perf_counter()
        result = backtest(str(events), config, parse_cutoff(cutoff))
        result["wall_seconds"] = time.perf_counter() - started
    return {"dataset": dataset, "cutoff_day": cutoff, **result}


def _delta(d: dict[str, float] | None) -> str:
    if d is None:
        return "—"
    return f"{d['delta']:+.4f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def print_engine_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| data | cut-off | horizon | users | churn rate | engage (ROC AUC / ECE) | recency only "
        "| BG/NBD (ROC AUC / ECE) | MBG/NBD | engage - recency [95 % CI] "
        "| engage - BG/NBD [95 % CI] | beats both | replay s |"
    )
    print("|" + "---|" * 13)
    wins = 0
    for r in rows:
        sc, paired = r["scorers"], r.get("paired", {})
        e, rec, bg = sc["engage"], sc["recency_only"], sc.get("bgnbd")
        mbg = sc.get("mbgnbd")
        best_baseline = max(rec["roc_auc"], bg["roc_auc"] if bg else 0.0)
        beats = e["roc_auc"] > best_baseline
        wins += beats
        print(
            f"| {r['dataset']} | {r['cutoff_day']} | {r['horizon_days']:g} d | {r['users']} "
            f"| {r['churn_rate']:.3f} | {_fmt(e['roc_auc'], 4)} / {_fmt(e['ece'])} "
            f"| {_fmt(rec['roc_auc'], 4)} "
            f"| {_fmt(bg['roc_auc'], 4) if bg else '—'} / {_fmt(bg['ece']) if bg else '—'} "
            f"| {_fmt(mbg['roc_auc'], 4) if mbg else '—'} "
            f"| {_delta(paired.get('recency_only'))} | {_delta(paired.get('bgnbd'))} "
            f"| {'yes' if beats else 'no'} | {r['seconds']:.0f} |"
        )
    print(f"\nengage's default beats both baselines in {wins} of {len(rows)} cells; "
          f"ECE at most {max(r['scorers']['engage']['ece'] for r in rows):.3f}")


def run_engine(args: argparse.Namespace, horizons: list[int], cutoffs: list[date]) -> int:
    from concurrent.futures import ProcessPoolExecutor

    cells = []
    for dataset in args.dataset.split(","):
        if dataset not in DATASETS:
            print(f"bench_churn_cdnow: unknown dataset {dataset!r}", file=sys.stderr)
            return 2
        end = max(p.day for p in load_cdnow(DATASETS[dataset]))
        cells += [(dataset, c.isoformat(), h) for c in cutoffs for h in horizons
                  if c + timedelta(days=h) <= end]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(engine_cell, *cell) for cell in cells]
        rows = []
        for cell, future in zip(cells, futures, strict=True):
            rows.append(future.result())
            print(f"{cell}: {rows[-1]['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
    print("engage backtest, default rules and model "
          f"({rows[0]['model'].split('@')[0] if rows else '-'}); ROC AUC, ECE; "
          "differences paired on the same users (DeLong)\n")
    print_engine_table(rows)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="sample",
                        help="sample or master (with --engine: comma-separated)")
    parser.add_argument("--engine", action="store_true",
                        help="measure `engage backtest` (the engine's default) per cell")
    parser.add_argument("--jobs", type=int, default=2, help="--engine: cells at a time")
    parser.add_argument("--horizons", default="30,60,90", help="days, comma-separated")
    parser.add_argument("--cutoffs", default=DEFAULT_CUTOFFS, help="YYYY-MM-DD, comma-separated")
    parser.add_argument("--population", choices=("all", "active"), default="all")
    parser.add_argument("--active-days", type=int, default=90)
    parser.add_argument("--return-event", choices=("any", "paid"), default="any")
    parser.add_argument("--weighting", choices=("octave", "none"), default="octave")
    parser.add_argument("--release", choices=("horizon", "resolution"), default="horizon")
    parser.add_argument("--calibration", choices=("platt", "none"), default="none")
    parser.add_argument("--max-silence-days", type=float, default=730.0)
    parser.add_argument("--model", choices=sorted(MODELS), default="offset")
    parser.add_argument("--also", default="", metavar="MODEL,...",
                        help="other --model choices learning the same examples, scored too")
    parser.add_argument("--with-current-engine", action="store_true",
                        help="also replay today's engine to each cut-off (slow)")
    parser.add_argument("--with-batch-fit", action="store_true",
                        help="also fit the same corrections in batch (an upper bound check)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write rows as JSON")
    args = parser.parse_args(argv)
    try:
        horizons = [int(h) for h in args.horizons.split(",")]
        cutoffs = [date.fromisoformat(c) for c in args.cutoffs.split(",")]
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"bench_churn_cdnow: {exc}", file=sys.stderr)
        return 2
    if any(h <= 0 for h in horizons):
        parser.error("horizons must be positive")
    if args.engine:
        return run_engine(args, horizons, cutoffs)
    if args.dataset not in DATASETS:
        parser.error(f"--dataset must be one of {sorted(DATASETS)}")
    unknown = [a for a in args.also.split(",") if a and a not in MODELS]
    if unknown:
        parser.error(f"--also: unknown models {unknown}; choose from {sorted(MODELS)}")
    purchases = load_cdnow(DATASETS[args.dataset])
    end = max(p.day for p in purchases)
    rows: list[dict[str, Any]] = []
    for h in horizons:
        usable = sorted(c for c in cutoffs if c + timedelta(days=h) <= end)
        if not usable:
            continue
        options = Options(
            horizon_days=h, population=args.population, active_days=args.active_days,
            return_event=args.return_event, weighting=args.weighting, release=args.release,
            calibration=args.calibration, max_silence_days=args.max_silence_days,
            model=args.model, batch_fit=args.with_batch_fit,
            also=tuple(a for a in args.also.split(",") if a),
        )
        online, elapsed = run_horizon(events_of(purchases, args.return_event), usable, options)
        if args.with_current_engine:
            counted = [p for p in purchases if args.return_event == "any" or p.amount > 0]
            score_with_current_engine(counted, online.snapshots, h)
        for snap in online.snapshots:
            rows.append({"horizon_days": h, **evaluate(snap)})
        print(
            f"horizon {h} d: {online.points} observation points, {online.sweeps} sweeps, "
            f"{online.learned} examples learned, {elapsed:.1f} s", file=sys.stderr,
        )
    rows.sort(key=lambda r: (r["cutoff"], r["horizon_days"]))
    print(
        f"dataset {DATASETS[args.dataset]}, population {args.population}, return event "
        f"{args.return_event}, model {args.model}, weighting {args.weighting}, release at "
        f"{args.release}, calibration {args.calibration}\n"
    )
    print_table(rows)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
