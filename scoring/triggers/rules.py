"""Trigger rules: which moments fire, once per episode, within cooldowns, caps and holdouts.

An *episode* names the situation a trigger answers (this silent period, this promotion, this
badge); it is recorded in the user's state and is part of the deterministic `trigger_id`,
so a restart or a reprocessed event can never produce a second trigger for it.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scoring.config import DIMENSIONS, EngageConfig
from scoring.hooks import TriggerContext
from scoring.state import UserState, name_hash, type_code
from scoring.timeutil import MS_PER_DAY, MS_PER_HOUR, format_rfc3339_ms
from scoring.triggers.config import TRIGGER_TYPES
from scoring.triggers.state import TriggerState
from scoring.windows import current_streak, typical_gap_days

TYPE_INDEX = {t: i for i, t in enumerate(TRIGGER_TYPES)}
ADVOCACY = DIMENSIONS.index("advocacy")
ADVOCACY_SKETCH = "advocacy"  # the partition's sketch of advocacy on each new active day


def trigger_id(user_id: str, trigger_type: str, episode: str) -> str:
    return hashlib.sha256(f"{user_id}|{trigger_type}|{episode}".encode()).hexdigest()[:32]


def episode_hash(episode: str) -> int:
    """What the user's state keeps of an episode: enough to recognise it, in 5 bytes."""
    return zlib.crc32(episode.encode())


def in_holdout(salt: str, trigger_type: str, user_id: str, share: float) -> bool:
    """A stable assignment: the same user is in the same group for a type on every worker."""
    if share <= 0.0:
        return False
    digest = hashlib.sha256(f"{salt}|{trigger_type}|{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class Candidate:
    """A trigger a rule wants to fire; `on_admit` records in the user's state what only an
    emitted trigger may record (e.g. an earned badge)."""

    __slots__ = ("details", "episode", "features", "on_admit", "rule", "type")

    def __init__(
        self, type_: str, episode: str, rule: str, features: dict[str, Any],
        details: dict[str, Any] | None = None,
        on_admit: Callable[[TriggerState], None] | None = None,
    ) -> None:
        self.type = type_
        self.episode = episode
        self.rule = rule
        self.features = features
        self.details = details or {}
        self.on_admit = on_admit


def _earn_badge(badge: int) -> Callable[[TriggerState], None]:
    def earn(ts: TriggerState) -> None:
        if badge not in ts.badges:
            ts.badges.append(badge)

    return earn


def _cooldown_ends_ms(ts: TriggerState, index: int, cooldown_days: float) -> int | None:
    """When the type's cooldown for this user ends (None: no cooldown running or configured)."""
    last = ts.last_fired_ms.get(index)
    if last is None or not cooldown_days:
        return None
    return last + int(cooldown_days * MS_PER_DAY)


def _r(x: float) -> float:
    return round(x, 4)


class TriggerRules:
    """The engine's TriggerHooks."""

    def __init__(
        self,
        config: EngageConfig,
        clock_ms: Callable[[], int] | None = None,
        on_suppressed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.c = config.triggers
        self.default_gap_days = config.scoring.default_gap_days
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.on_suppressed = on_suppressed or (lambda _type, _reason: None)
        self.tier_thresholds = [lv.min_score for lv in config.tiers.levels]
        self.tier_names = [lv.name for lv in config.tiers.levels]
        self.vip_tier = self.tier_names.index(self.c.vip_promotion.tier)
        self.badges_by_code: dict[int, list[tuple[int, int, str]]] = {}
        for badge in self.c.milestone.badges:
            self.badges_by_code.setdefault(type_code(badge.event_type), []).append(
                (name_hash(badge.name), badge.count, badge.name)
            )
        self.onboarding_codes = {type_code(t) for t in self.c.onboarding_stalled.required_types}
        self.advocacy_types = {
            t for t, spec in config.event_types.items() if spec.weights.get("advocacy", 0) > 0
        }
        self.advocacy_rank = 1.0 - self.c.ambassador_candidate.top_share
        self.streak_lengths = sorted(self.c.streak.lengths)

    # -- candidates -------------------------------------------------------------------------

    def _on_event(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        state, event = ctx.state, ctx.event
        assert event is not None
        ts = ctx.triggers
        code = type_code(event.type)
        self._tiers(ctx, out)
        for badge, count, name in self.badges_by_code.get(code, ()):
            if badge not in ts.badges and state.lifetime.get(code, 0) >= count:
                # the badge is recorded when the trigger is admitted (see _admit), so one
                # held back by the daily cap comes with the user's next event of this type
                out.append(Candidate("milestone", name, f"milestone.{name}",
                                     {"event_type": event.type, "count": count},
                                     {"badge": name}, on_admit=_earn_badge(badge)))
        if code in self.onboarding_codes:
            ts.onboarding_done = True
        if ctx.new_active_day and self.streak_lengths:
            self._streak(ctx, out)
        silence_days = ctx.gap_before_ms / MS_PER_DAY
        wb = self.c.win_back
        if ctx.was_churned or silence_days >= wb.min_silence_days:
            out.append(Candidate(
                "win_back", f"return@{ctx.now_ms}",
                "win_back.churned" if ctx.was_churned else "win_back.silence",
                {"silence_days": _r(silence_days), "was_labelled_churned": ctx.was_churned,
                 "min_silence_days": wb.min_silence_days},
            ))
        if ctx.new_active_day:
            ctx.shared.sketch(ADVOCACY_SKETCH).add(state.dims[ADVOCACY])
        if event.type in self.advocacy_types:
            self._ambassador(ctx, out)

    def _tiers(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        new, old = ctx.tier, ctx.previous_tier
        if new == old:
            return
        names = self.tier_names
        score = ctx.view.engagement_score
        features = {"engagement_score": _r(score), "from_threshold": self.tier_thresholds[old],
                    "to_threshold": self.tier_thresholds[new]}
        direction = "promotion" if new > old else "demotion"
        # promotions happen on an event (its time is stable under reprocessing); demotions on a
        # sweep, whose exact time depends on batching, so they are named by their UTC day
        when = ctx.now_ms if new > old else f"day{ctx.now_ms // MS_PER_DAY}"
        out.append(Candidate("tier_change", f"{names[old]}->{names[new]}@{when}",
                             f"tier_change.{direction}", features,
                             {"from_tier": names[old], "to_tier": names[new],
                              "direction": direction}))
        if new >= self.vip_tier > old:
            out.append(Candidate("vip_promotion", f"{names[new]}@{ctx.now_ms}",
                                 "vip_promotion.entered_top_tier", features,
                                 {"from_tier": names[old], "to_tier": names[new]}))

    def _streak(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        state, ts = ctx.state, ctx.triggers
        length = current_streak(state, state.anchor_day)
        reached = [n for n in self.streak_lengths if n <= length]
        if not reached:
            return
        start = state.anchor_day - length + 1
        if ts.streak_start == start and ts.streak_served >= reached[-1]:
            return
        ts.streak_start, ts.streak_served = start, reached[-1]
        out.append(Candidate("streak", f"{reached[-1]}@{start}", f"streak.{reached[-1]}_days",
                             {"current_streak": length, "length": reached[-1]},
                             {"streak_days": reached[-1]}))

    def _ambassador(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        rule = self.c.ambassador_candidate
        advocacy = ctx.state.dims[ADVOCACY]
        sketch = ctx.shared.sketch(ADVOCACY_SKETCH)
        cut = sketch.quantile(self.advocacy_rank)
        if cut is None or advocacy < max(rule.min_advocacy, cut):
            return
        month = datetime.fromtimestamp(ctx.now_ms / 1000, tz=UTC).strftime("%Y-%m")
        out.append(Candidate("ambassador_candidate", month, "ambassador_candidate.top_advocacy",
                             {"advocacy": _r(advocacy), "top_share_cut": _r(cut),
                              "min_advocacy": rule.min_advocacy}))

    def _on_sweep(self, ctx: TriggerContext, out: list[Candidate]) -> None:
        state = ctx.state
        self._tiers(ctx, out)
        nudge = self.c.reengagement_nudge
        if state.active_days >= nudge.min_active_days:
            view = ctx.view
            p = ctx.churn_probability
            by_prob = p is not None and p > nudge.churn_probability_above
            by_silence = view.silence_ratio > nudge.silence_ratio_above
            if (by_prob or by_silence) and view.recency_days >= 1.0:
                out.append(Candidate(
                    "reengagement_nudge", f"silence@{state.last_ms}",
                    "reengagement_nudge.churn_probability" if by_prob
                    else "reengagement_nudge.silence_ratio",
                    {"churn_probability": None if p is None else _r(p),
                     "churn_probability_above": nudge.churn_probability_above,
                     "silence_ratio": _r(view.silence_ratio),
                     "silence_ratio_above": nudge.silence_ratio_above,
                     "recency_days": _r(view.recency_days),
                     "typical_gap_days": _r(view.typical_gap_days)},
                ))
        onboarding = self.c.onboarding_stalled
        age_ms = ctx.now_ms - state.first_ms
        if not ctx.triggers.onboarding_done and age_ms >= onboarding.after_days * MS_PER_DAY:
            ctx.triggers.onboarding_done = True  # judged once: fire now or never
            out.append(Candidate(
                "onboarding_stalled", "onboarding", "onboarding_stalled.no_first_actions",
                {"days_since_first_event": _r(age_ms / MS_PER_DAY),
                 "required_types": list(onboarding.required_types)},
            ))

    # -- hooks ------------------------------------------------------------------------------

    def evaluate(self, ctx: TriggerContext) -> list[dict[str, Any]]:
        if not self.c.enabled:
            return []
        candidates: list[Candidate] = []
        if ctx.event is not None:
            self._on_event(ctx, candidates)
        else:
            self._on_sweep(ctx, candidates)
        return [t for c in candidates if (t := self._admit(ctx, c)) is not None]

    def _admit(self, ctx: TriggerContext, c: Candidate) -> dict[str, Any] | None:
        rule = self.c.rule(c.type)
        if not rule.enabled:
            return None
        ts = ctx.triggers
        index = TYPE_INDEX[c.type]
        episode = episode_hash(c.episode)
        if ts.episodes.get(index) == episode:
            return None  # this episode was already served: idempotent, not suppressed
        now = ctx.now_ms
        cooldown_ends = _cooldown_ends_ms(ts, index, rule.cooldown_days)
        if cooldown_ends is not None and now < cooldown_ends:
            self.on_suppressed(c.type, "cooldown")
            return None
        day = now // MS_PER_DAY
        if ts.day != day:
            ts.day, ts.day_count = day, 0
        if ts.day_count >= self.c.daily_cap:
            self.on_suppressed(c.type, "daily_cap")
            return None
        ts.day_count += 1
        ts.last_fired_ms[index] = now
        ts.episodes[index] = episode
        if c.on_admit is not None:
            c.on_admit(ts)
        control = in_holdout(self.c.holdout_salt, c.type, ctx.user_id, rule.holdout_share)
        view = ctx.view
        return {
            "schema": "trigger/v1",
            "trigger_id": trigger_id(ctx.user_id, c.type, c.episode),
            "type": c.type,
            "user_id": ctx.user_id,
            "episode": c.episode,
            "variant": "control" if control else "treatment",
            "event_time": format_rfc3339_ms(now),
            "emitted_at": format_rfc3339_ms(self.clock_ms()),
            "expires_at": format_rfc3339_ms(now + int(rule.expires_hours * MS_PER_HOUR)),
            "reason": {"rule": c.rule, "features": c.features},
            "score": _r(view.engagement_score),
            "tier": self.tier_names[ctx.tier],
            "churn_probability": None if ctx.churn_probability is None
            else _r(ctx.churn_probability),
            "details": c.details,
        }

    def next_due_ms(self, state: UserState) -> int | None:
        due: list[int] = []
        nudge = self.c.reengagement_nudge
        if state.active_days >= nudge.min_active_days and state.triggers.episodes.get(
            TYPE_INDEX["reengagement_nudge"]
        ) != episode_hash(f"silence@{state.last_ms}"):
            gap = max(typical_gap_days(state, self.default_gap_days), 1.0)
            when = state.last_ms + int(nudge.silence_ratio_above * gap * MS_PER_DAY) + 1
            ts = state.triggers
            cooldown_ends = _cooldown_ends_ms(
                ts, TYPE_INDEX["reengagement_nudge"], nudge.cooldown_days
            )
            if cooldown_ends is not None:
                when = max(when, cooldown_ends)
            if ts.day_count >= self.c.daily_cap and when // MS_PER_DAY == ts.day:
                when = (ts.day + 1) * MS_PER_DAY  # capped today: look again tomorrow
            due.append(when)
        if not state.triggers.onboarding_done:
            due.append(state.first_ms + int(self.c.onboarding_stalled.after_days * MS_PER_DAY))
        return min(due) if due else None
