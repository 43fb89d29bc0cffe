"""Admission, written once for every rule: which candidates become triggers.

A candidate is admitted unless its episode was already served (idempotent: not counted as
suppressed), the type's cooldown for the user is running, the user gave a bad rating less
than the type's `quiet_after_bad_rating_days` ago (suppressed as `bad_rating`: never ask an
unhappy user for something right after they said so), or the user's daily cap is reached.
An admitted trigger is recorded in the user's state (episode, last fired time, the cap's
count, what the rule records on admission) and assigned to treatment or control by a
stable salted hash of (type, user): the same user is in the same group on every worker.

The engine's TriggerHooks: `evaluate` asks every enabled rule, in priority order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from scoring.config import EngageConfig
from scoring.due_index import earliest
from scoring.hooks import TriggerContext
from scoring.records import Suppression, Trigger, TriggerReason
from scoring.state import UserState
from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms
from scoring.triggers.rule import (
    Candidate,
    TriggerRule,
    after_bad_rating,
    cooldown_ends_ms,
    rounded,
)
from scoring.triggers.state import episode_hash


def trigger_id(user_id: str, trigger_type: str, episode: str) -> str:
    return hashlib.sha256(f"{user_id}|{trigger_type}|{episode}".encode()).hexdigest()[:32]


def in_holdout(salt: str, trigger_type: str, user_id: str, share: float) -> bool:
    """A stable assignment: the same user is in the same group for a type on every worker."""
    if share <= 0.0:
        return False
    digest = hashlib.sha256(f"{salt}|{trigger_type}|{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class TriggerRules:
    """The engine's TriggerHooks over every registered, enabled rule."""

    def __init__(
        self,
        config: EngageConfig,
        on_suppressed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.c = config.triggers
        self.on_suppressed = on_suppressed or (lambda _type, _reason: None)
        self.rules: list[TriggerRule] = [
            rule(self.c.rule(rule.trigger_type), config)
            for rule in self.c.active() if self.c.rule(rule.trigger_type).enabled
        ]
        self.by_type = {r.trigger_type: r for r in self.rules}
        self.event_rules = [r for r in self.rules if _overrides(r, "on_event")]
        self.sweep_rules = [r for r in self.rules if _overrides(r, "on_sweep")]
        self.signal_rules = [r for r in self.rules if _overrides(r, "on_signals")]
        self.due_rules = [r for r in self.rules if _overrides(r, "next_due_ms")]

    def evaluate(self, ctx: TriggerContext) -> list[Trigger]:
        if not self.c.enabled:
            return []
        candidates: list[Candidate] = []
        if ctx.event is not None:
            for rule in self.event_rules:
                rule.on_event(ctx, candidates)
        elif not ctx.signals_only:
            for rule in self.sweep_rules:
                rule.on_sweep(ctx, candidates)
        if ctx.signals:
            for rule in self.signal_rules:
                rule.on_signals(ctx, candidates)
        if not candidates:  # the usual moment
            return []
        return [t for c in candidates if (t := self._admit(ctx, c)) is not None]

    def _admit(self, ctx: TriggerContext, c: Candidate) -> Trigger | None:
        rule = self.by_type[c.type]
        rc = rule.config
        ts = ctx.triggers
        code = rule.code
        episode = episode_hash(c.episode)
        if ts.episodes.get(code) == episode:
            return None  # this episode was already served: idempotent, not suppressed
        now = ctx.now_ms
        cooldown_ends = cooldown_ends_ms(ts, code, rc.cooldown_days)
        if cooldown_ends is not None and now < cooldown_ends:
            self.on_suppressed(c.type, "cooldown")
            return None
        if after_bad_rating(ctx.state, now, rc.quiet_after_bad_rating_days):
            self.on_suppressed(c.type, "bad_rating")
            return None
        day = now // MS_PER_DAY
        if ts.day != day:
            ts.day, ts.day_count = day, 0
        if ts.day_count >= self.c.daily_cap:
            self.on_suppressed(c.type, "daily_cap")
            return None
        control = in_holdout(self.c.holdout_salt, c.type, ctx.user_id, rc.holdout_share)
        if rc.daily_budget and not control and not ctx.shared.spend(code, day, rc.daily_budget):
            # the holdout is never given the incentive, so it spends nothing
            self.on_suppressed(c.type, "budget")
            ctx.suppressed.append(Suppression(
                trigger_id=trigger_id(ctx.user_id, c.type, c.episode), type=c.type,
                user_id=ctx.user_id, episode=c.episode, reason="budget",
                event_time=format_rfc3339_ms(now),
                detail=f"triggers.{c.type}.daily_budget={rc.daily_budget} spent for UTC day "
                f"{day} (this partition's share: {ctx.shared.budget_share(rc.daily_budget)})",
            ))
            return None
        ts.day_count += 1
        ts.last_fired_ms[code] = now
        ts.episodes[code] = episode
        if c.on_admit is not None:
            c.on_admit(ts)
        return Trigger(
            trigger_id=trigger_id(ctx.user_id, c.type, c.episode),
            type=c.type,
            user_id=ctx.user_id,
            episode=c.episode,
            variant="control" if control else "treatment",
            event_time=format_rfc3339_ms(now),
            reason=TriggerReason(rule=c.rule, features=c.features),
            score=rounded(ctx.score),
            tier=ctx.tier_names[ctx.tier],
            churn_probability=None if ctx.churn_probability is None
            else rounded(ctx.churn_probability),
            details=c.details,
        )

    def next_due_ms(self, state: UserState) -> int | None:
        """The earliest of the rules' due times (asked after every event: no list built)."""
        due: int | None = None
        for rule in self.due_rules:
            due = earliest(due, rule.next_due_ms(state))
        return due


def _overrides(rule: TriggerRule, method: str) -> bool:
    return getattr(type(rule), method) is not getattr(TriggerRule, method)
