"""`engage replay`: a JSONL(.gz) event file through the same engine, in-process, no broker.

A shell beside the worker, built by the same engine factory. Users are placed on partitions
exactly as Kafka's default partitioner would place them (`partitions`: the live topic's
count), so lateness, silent-user sweeps and the per-partition sketches follow the same
sequences as the live worker. The churn loop (examples -> trainer -> predictor) runs
in-process.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import msgspec

from scoring.alignment import AlignedFeed
from scoring.churn.labels import ChurnLabels
from scoring.churn.trainer import ChurnTrainer, Predictor
from scoring.config import EngageConfig
from scoring.driver import Driver
from scoring.engine import Outcome, ScoringEngine
from scoring.events import Event, EventRules, InvalidEvent, decode_event
from scoring.extensions import Routed
from scoring.partition_state import PartitionShared, PartitionState
from scoring.partitioning import partition_for_user
from scoring.records import ChurnExample, ScoreRecord, Suppression, Trigger, stamp
from scoring.state import UserState
from scoring.state_codec import encode_state
from scoring.timeutil import format_rfc3339_ms
from streams.collector import no_cyclic_gc
from streams.engine_factory import build_engine

DEFAULT_PARTITIONS = 4


def open_lines(path: str | Path) -> IO[bytes]:
    path = str(path)
    if path.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


class InProcessChurn:
    """The live topology (scorer -> examples -> trainer -> model versions -> scorer) in one
    process: a new model version, with the BG/NBD parameters of the day, reaches the
    predictor every `publish_every_examples`. `on_example` sees every resolved example;
    `validate=False` learns without progressive validation (ChurnTrainer)."""

    def __init__(
        self,
        config: EngageConfig,
        on_example: Callable[[ChurnExample], None] | None = None,
        validate: bool = True,
    ) -> None:
        c = config.churn
        self.trainer = ChurnTrainer.from_config(c, validate=validate)
        self.predictor = Predictor()
        self.publish_every = c.publish_every_examples
        self.labels = ChurnLabels(
            config, self.predictor.predict, self.predictor.tag, self.predictor.bgnbd
        )
        self.on_example = on_example

    def learn(self, examples: list[ChurnExample]) -> None:
        trainer = self.trainer
        for example in examples:
            if self.on_example is not None:
                self.on_example(example)
            trainer.learn(example)
            if trainer.since_publish >= self.publish_every:
                self.publish()

    def publish(self) -> None:
        champion = self.trainer.champion
        version = self.trainer.next_version(now_ms=0)
        self.predictor.load(champion.model, champion.name, version, self.trainer.params)


@dataclass
class ReplayResult:
    states: dict[str, UserState]
    engine: ScoringEngine
    churn: InProcessChurn | None
    as_of_ms: int
    summary: dict[str, Any] = field(default_factory=dict)
    boards: dict[int, dict[str, list[list[float | str]]]] = field(default_factory=dict)
    partitions: dict[int, PartitionState] = field(default_factory=dict)  # as a worker stores
    driver: Driver | None = None
    partition_count: int = DEFAULT_PARTITIONS

    def score_record(self, user_id: str, as_of_ms: int | None = None) -> ScoreRecord:
        """The user's record as the snapshot writes it (against their partition's reference)."""
        shared = None
        if self.driver is not None:
            shared = self.driver.clock(partition_for_user(user_id, self.partition_count)).shared
        when = self.as_of_ms if as_of_ms is None else as_of_ms
        return self.engine.score_record(self.states[user_id], user_id, when, shared=shared)


def build_replay_engine(
    config: EngageConfig,
    *,
    churn: bool = True,
    triggers: bool = True,
    on_example: Callable[[ChurnExample], None] | None = None,
    validate: bool = True,
) -> tuple[ScoringEngine, InProcessChurn | None]:
    loop = InProcessChurn(config, on_example, validate) if churn else None
    engine = build_engine(config, churn=loop.labels if loop else None, triggers=triggers)
    return engine, loop


def _progress(total_bytes: int | None, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, desc="replay", mininterval=0.5)


@no_cyclic_gc()  # throughout: the summary and boards at the end allocate a lot too
def run_replay(
    input_path: str | Path,
    config: EngageConfig,
    *,
    as_of: int | None = None,
    snapshot_path: str | Path | None = None,
    triggers_path: str | Path | None = None,
    progress: bool = True,
    partitions: int = DEFAULT_PARTITIONS,
    churn: bool = True,
    triggers: bool = True,
    now_ms: Callable[[], int] | None = None,
    refresh: bool = True,
    after_as_of: Callable[[Event], None] | None = None,
    on_example: Callable[[ChurnExample], None] | None = None,
    validate: bool = True,
) -> ReplayResult:
    """Score every event of the file; write the snapshot and triggers; return a summary.

    `refresh=False` leaves out the periodic score refresh (`scoring.refresh_every_hours`):
    sweeps that only publish a score record, which a replay that writes no snapshot and no
    triggers would throw away. `after_as_of` sees the valid events after `as_of` (a
    backtest labels from them); `on_example` every resolved churn example. `validate=False`:
    the trainer keeps no progressive-validation figures (summary["churn"] shows none), for a
    caller that measures the model otherwise; the model learns and predicts the same.
    """
    if not refresh and config.scoring.refresh_every_hours:
        config = msgspec.structs.replace(
            config, scoring=msgspec.structs.replace(config.scoring, refresh_every_hours=0.0)
        )
    engine, loop = build_replay_engine(
        config, churn=churn, triggers=triggers, on_example=on_example, validate=validate
    )
    engine.sweep_probability = False  # replay's outcomes make no score records
    rules = EventRules.from_config(config)
    wall = now_ms or (lambda: int(time.time() * 1000))
    states: dict[str, UserState] = {}
    driver = Driver(engine, states.get, partitions)
    outcomes: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    trigger_counts: Counter[str] = Counter()
    trig_out = open(triggers_path, "wb") if triggers_path else None  # noqa: SIM115
    encode = msgspec.json.encode
    last_ts = 0
    started = time.perf_counter()
    bar = _progress(Path(input_path).stat().st_size, progress)

    def deliver(routed: list[Routed]) -> None:
        """Messages to other users, delivered at once (the worker sends them through
        engagement.routed to the recipient's partition)."""
        queue = list(routed)
        while queue:
            message = queue.pop(0)
            got = driver.receive(partition_for_user(message.to, partitions), message, states)
            outcomes["messages"] += 1
            emit(got.triggers, got.examples, got.suppressed)
            queue += got.routed
            for _partition, _user, swept in driver.sweep_advanced(states):
                outcomes["sweeps"] += 1
                emit(swept.triggers, swept.examples, swept.suppressed)
                queue += swept.routed

    def emit(
        outcome_triggers: list[Trigger],
        examples: list[ChurnExample],
        suppressed: list[Suppression] | None = None,
    ) -> None:
        for held in suppressed or ():
            trigger_counts[f"{held.type}/suppressed_{held.reason}"] += 1
        for t in outcome_triggers:
            trigger_counts[f"{t.type}/{t.variant}"] += 1
            if trig_out is not None:
                stamp(t, wall(), config.triggers.rule(t.type).expires_hours)
                trig_out.write(encode(t) + b"\n")
        if loop is not None and examples:
            loop.learn(examples)

    def applied(event: Event, outcome: Outcome) -> None:
        nonlocal last_ts
        outcomes[outcome.status] += 1
        if outcome.status == "late":
            dead["late"] += 1
            return
        last_ts = max(last_ts, event.ts_ms)
        if outcome.triggers or outcome.examples or outcome.suppressed:
            emit(outcome.triggers, outcome.examples, outcome.suppressed)
        deliver(outcome.routed)

    def swept(outcome: Outcome) -> None:
        outcomes["sweeps"] += 1
        if outcome.triggers or outcome.examples or outcome.suppressed:
            emit(outcome.triggers, outcome.examples, outcome.suppressed)
        deliver(outcome.routed)

    feed = AlignedFeed(driver, states, applied, swept)
    try:
        with open_lines(input_path) as fh:
            now = wall()
            consumed = 0
            for line in _lines(fh):
                consumed += len(line)
                if bar is not None and consumed > 1 << 20:
                    bar.update(consumed)
                    consumed = 0
                try:
                    event = decode_event(line, now_ms=now, rules=rules)
                except InvalidEvent as exc:
                    dead[exc.reason] += 1
                    continue
                if as_of is not None and event.ts_ms > as_of:
                    outcomes["after_as_of"] += 1
                    if after_as_of is not None:
                        after_as_of(event)
                    continue
                feed.add(partition_for_user(event.user_id, partitions), event)
            feed.finish()
            if bar is not None:
                bar.update(consumed)
    finally:
        if bar is not None:
            bar.close()
        if trig_out is not None:
            trig_out.close()
    elapsed = time.perf_counter() - started
    as_of_ms = as_of if as_of is not None else last_ts
    if snapshot_path:
        write_snapshot(snapshot_path, states, engine, as_of_ms,
                       lambda user: driver.clock(partition_for_user(user, partitions)).shared)
    counted = sum(outcomes[k] for k in ("scored", "duplicate", "capped"))
    sizes = sorted(len(encode_state(s)) for s in states.values())
    summary: dict[str, Any] = {
        "users": len(states),
        "events_valid": counted + outcomes["late"] + outcomes["after_as_of"],
        "events_scored": outcomes["scored"],
        "duplicates": outcomes["duplicate"],
        "capped": outcomes["capped"],
        "dead_letters": dict(dead),
        "sweeps": outcomes["sweeps"],
        "triggers": dict(sorted(trigger_counts.items())),
        "as_of": format_rfc3339_ms(as_of_ms) if as_of_ms else None,
        "refresh_every_hours": config.scoring.refresh_every_hours,
        "seconds": round(elapsed, 3),
        "events_per_second": round((counted + sum(dead.values())) / elapsed) if elapsed else None,
        "state_bytes_per_user": {
            "median": sizes[len(sizes) // 2] if sizes else 0,
            "p95": sizes[int(len(sizes) * 0.95)] if sizes else 0,
            "max": sizes[-1] if sizes else 0,
        },
    }
    summary["population"] = {
        "events_held": feed.waited,
        "forced_adoptions": driver.exchange.forced,
    }
    if loop is not None:
        summary["churn"] = loop.trainer.status()
    boards = {p: clock.shared.boards() for p, clock in driver.clocks.items()}
    partition_states = {p: driver.partition_state(p) for p in driver.clocks}
    return ReplayResult(states, engine, loop, as_of_ms, summary, boards, partition_states,
                        driver, partitions)


def _lines(fh: IO[bytes]) -> Iterator[bytes]:
    for line in fh:
        line = line.strip()
        if line:
            yield line


def write_snapshot(
    path: str | Path,
    states: dict[str, UserState],
    engine: ScoringEngine,
    as_of_ms: int,
    shared_of: Callable[[str], PartitionShared] | None = None,
) -> None:
    """One JSON line per user, scores evaluated at `as_of_ms`, sorted by user_id, placed
    against the reference in force on each user's partition (`shared_of`)."""
    with open(path, "w") as out:
        for user_id in sorted(states):
            shared = shared_of(user_id) if shared_of is not None else None
            record = msgspec.to_builtins(
                engine.score_record(states[user_id], user_id, as_of_ms, shared=shared)
            )
            out.write(json.dumps(record, sort_keys=True) + "\n")
