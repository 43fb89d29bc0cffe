"""Event generation: per-user lazy generators heap-merged into one ts-ordered stream."""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate, islice
from typing import Any

from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms
from simulator.personas import CHANNELS, SPECS, PersonaSpec
from simulator.population import Truth, UserPlan, plan_population

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _SpecTables:
    types: tuple[str, ...]
    cum: tuple[float, ...]
    rating_cum: tuple[float, ...]
    log_median: float


def _tables(spec: PersonaSpec) -> _SpecTables:
    types = tuple(spec.mix)
    return _SpecTables(
        types=types,
        cum=tuple(accumulate(spec.mix[t] for t in types)),
        rating_cum=tuple(accumulate(spec.rating_weights)),
        log_median=math.log(spec.purchase_median),
    )


_TABLES: Mapping[str, _SpecTables] = {name: _tables(s) for name, s in SPECS.items()}
_RATINGS = (1, 2, 3, 4, 5)


class _World:
    """Shared, read-only context: content catalogue and who can be referred/followed."""

    def __init__(self, plans: list[UserPlan], seed: int) -> None:
        n_content = max(200, 5 * len(plans))
        self.content_ids = [f"c{i:06d}" for i in range(n_content)]
        # Zipf-ish popularity (s = 1.1), shuffled so that id order does not mean popularity
        weights = [1.0 / (rank + 1) ** 1.1 for rank in range(n_content)]
        random.Random(f"engage-sim/{seed}/content").shuffle(weights)
        self.content_cum = list(accumulate(weights))
        self.user_ids = [p.user_id for p in plans]
        self.new_user_ids = [p.user_id for p in plans if p.persona == "new"] or self.user_ids


def _user_events(plan: UserPlan, world: _World) -> Iterator[tuple[int, int, Event]]:
    """One user's events in ts order, as (ts_ms, user_index, event)."""
    uid = plan.user_id
    idx = plan.index
    sessions = plan.sessions
    starts = [s.start_ms for s in sessions]
    pending_refunds: dict[int, list[float]] = {}
    home = plan.channel
    others = [c for c in CHANNELS if c != home]
    seq = 0
    content_ids = world.content_ids
    content_cum = world.content_cum
    n_content = len(content_ids)
    for k, sess in enumerate(sessions):
        rng = random.Random(sess.seed)
        spec = SPECS[sess.spec]
        tab = _TABLES[sess.spec]
        n = sess.n_events
        dur = sess.duration_ms
        start = sess.start_ms
        channel = home if rng.random() < 0.85 else rng.choice(others)
        if n >= 2:
            inner = sorted(rng.randrange(1, dur) for _ in range(n - 2)) if dur > 1 else [0] * (
                n - 2)
            offsets = [0, *inner, dur]
        else:
            offsets = [0]
        kinds = ["session_start", *rng.choices(tab.types, cum_weights=tab.cum, k=n - 1)]
        slots: list[tuple[int, str, float]] = [(o, t, 0.0) for o, t in zip(offsets, kinds,
                                                                          strict=True)]
        refunds = pending_refunds.pop(k, None)
        if refunds:
            # keep the session's first and last event where the plan put them
            for amount in refunds:
                off = rng.randrange(1, dur) if dur > 1 else 0
                slots.append((off, "refund", amount))
            slots.sort(key=lambda s: s[0])
        for off, etype, refund_amount in slots:
            ts = start + off
            seq += 1
            event: Event = {
                "event_id": f"{uid}-{seq:06d}", "user_id": uid, "type": etype,
                "ts": format_rfc3339_ms(ts), "channel": channel,
            }
            if etype in ("view", "like", "comment", "share"):
                r = rng.random() * content_cum[-1]
                ci = bisect_left(content_cum, r)
                event["properties"] = {"content_id": content_ids[min(ci, n_content - 1)]}
            elif etype == "purchase":
                amount = round(rng.lognormvariate(tab.log_median, spec.purchase_sigma), 2)
                quantity = 1 + int(rng.expovariate(1.3))
                event["properties"] = {"amount": amount, "quantity": quantity,
                                       "content_id": f"sku{rng.randrange(500):04d}"}
                if rng.random() < spec.refund_prob:
                    due = ts + int(rng.uniform(1.0, 10.0) * MS_PER_DAY)
                    j = bisect_left(starts, due)
                    if j < len(sessions):
                        pending_refunds.setdefault(j, []).append(amount)
            elif etype == "refund":
                event["properties"] = {"amount": refund_amount, "quantity": 1}
            elif etype == "review":
                rating = rng.choices(_RATINGS, cum_weights=tab.rating_cum)[0]
                event["properties"] = {"rating": rating,
                                       "content_id": f"sku{rng.randrange(500):04d}"}
            elif etype == "feedback":
                event["properties"] = {
                    "rating": rng.choices(_RATINGS, cum_weights=tab.rating_cum)[0]}
            elif etype == "referral":
                event["properties"] = {"target_user_id": rng.choice(world.new_user_ids)}
            elif etype == "follow":
                event["properties"] = {"target_user_id": rng.choice(world.user_ids)}
            elif etype == "post":
                event["properties"] = {"content_id": f"p-{uid}-{seq:06d}"}
            elif etype == "reward_redeemed":
                event["properties"] = {"quantity": 100 * rng.randint(1, 10)}
            yield ts, idx, event


@dataclass(slots=True)
class Simulation:
    """A planned population: its ground truth and a way to stream its events."""

    plans: list[UserPlan]
    seed: int
    start_ms: int
    end_ms: int

    @property
    def truths(self) -> list[Truth]:
        return [p.truth() for p in self.plans]

    @property
    def planned_events(self) -> int:
        """Events in the plan, refunds excluded (they add a fraction of a percent)."""
        return sum(p.n_events for p in self.plans)

    def timed_events(self, max_events: int | None = None) -> Iterator[tuple[int, Event]]:
        """(ts_ms, event) pairs in ts order (ties broken by user index)."""
        world = _World(self.plans, self.seed)
        merged = heapq.merge(*(_user_events(p, world) for p in self.plans if p.sessions))
        stream = ((item[0], item[2]) for item in merged)
        if max_events is not None:
            return islice(stream, max(0, max_events))
        return stream

    def events(self, max_events: int | None = None) -> Iterator[Event]:
        """Event dicts in ts order, generated lazily."""
        return (event for _, event in self.timed_events(max_events))


def simulate(users: int = 1000, days: float = 60, seed: int = 7,
             start_ms: int = DEFAULT_START_MS,
             mix: dict[str, float] | None = None, featured: int = 0) -> Simulation:
    plans = plan_population(users, days, seed, start_ms, mix, featured)
    return Simulation(plans=plans, seed=seed, start_ms=start_ms,
                      end_ms=start_ms + int(days * MS_PER_DAY))


def generate(users: int = 1000, days: float = 60, seed: int = 7,
             start_ms: int = DEFAULT_START_MS, mix: dict[str, float] | None = None,
             max_events: int | None = None,
             featured: int = 0) -> tuple[Iterator[Event], list[Truth]]:
    """Events (dicts, globally sorted by ts, streamed lazily) and per-user ground truth."""
    sim = simulate(users=users, days=days, seed=seed, start_ms=start_ms, mix=mix,
                   featured=featured)
    return sim.events(max_events), sim.truths
