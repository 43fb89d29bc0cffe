"""The scoring engine: (state, event) -> (new state, what to emit). Pure, no I/O.

The Faust agent, `engage replay`, the tests and the benchmarks all drive this one class,
so the live stream and an offline replay give the same answer for the same events.
"""

from __future__ import annotations

from collections.abc import Sequence

from scoring.calibration import NOT_PLACED, Calibration, Placement
from scoring.config import EngageConfig
from scoring.dimensions import DimensionModel
from scoring.due_index import earliest
from scoring.events import Event
from scoring.extensions import Extension, Moment, Routed, builtin_extensions
from scoring.features import Standing, UserView, score_record
from scoring.hooks import ChurnHooks, TriggerContext, TriggerHooks
from scoring.partition_state import PartitionShared, PartitionState
from scoring.points_state import balance
from scoring.population_reference import SnapshotExchange, composite_entry
from scoring.records import ChurnExample, ReferralsRecord, ScoreRecord, Suppression, Trigger
from scoring.satisfaction import SatisfactionModel
from scoring.state import UserState, id_hash, name_hash, type_code
from scoring.tiers import TierPolicy
from scoring.timeutil import MS_PER_DAY, MS_PER_MINUTE, format_rfc3339_ms
from scoring.windows import add_count, mark_active


class Outcome:
    """What one event, sweep or message did. `status`: scored, duplicate, capped, late,
    swept or received. `routed`: messages for other users; `counters`: metric increments
    (name, labels, amount) for the shell."""

    __slots__ = (
        "churn_probability", "counters", "examples", "publish_ms", "routed", "state",
        "status", "suppressed", "triggers",
    )

    def __init__(
        self,
        status: str,
        state: UserState | None,
        publish_ms: int | None = None,
        triggers: list[Trigger] | None = None,
        examples: list[ChurnExample] | None = None,
        churn_probability: float | None = None,
    ) -> None:
        self.status = status
        self.state = state
        self.publish_ms = publish_ms  # a score record is due, evaluated at this time
        self.triggers = triggers or []
        self.examples = examples or []
        self.churn_probability = churn_probability
        self.routed: list[Routed] = []
        self.counters: list[tuple[str, tuple[str, ...], float]] = []
        self.suppressed: list[Suppression] = []

    def merge(self, other: Outcome) -> Outcome:
        """Add what `other`, a later step of the same moment, emitted."""
        self.triggers += other.triggers
        self.examples += other.examples
        self.routed += other.routed
        self.counters += other.counters
        self.suppressed += other.suppressed
        return self

    def took(self, moment: Moment) -> Outcome:
        """Carry what extensions made of the moment."""
        self.routed = moment.routed
        self.counters = moment.counters
        self.suppressed = moment.suppressed
        return self


def _pairs_from(pairs: list[int], at: int, floor: int) -> list[int]:
    """A flat list of pairs without those whose element `at` (0 or 1) is below `floor`.

    Pairs are appended in arrival order, so the first pair is the usual oldest: when it is
    not below the floor the list is returned as it is (no allocation on the hot path).
    """
    if not pairs or pairs[at] >= floor:
        return pairs
    return [x for i in range(0, len(pairs), 2) if pairs[i + at] >= floor for x in pairs[i : i + 2]]


class ScoringEngine:
    def __init__(
        self,
        config: EngageConfig,
        churn: ChurnHooks | None = None,
        triggers: TriggerHooks | None = None,
        extensions: Sequence[Extension] | None = None,
    ) -> None:
        self.config = config
        self.churn = churn
        self.triggers = triggers
        self.extensions = list(extensions if extensions is not None else builtin_extensions(config))
        # the extensions that ever need a sweep (the base class never does)
        self._due_extensions = [
            e for e in self.extensions if type(e).next_due_ms is not Extension.next_due_ms
        ]
        s = config.scoring
        self.lateness_ms = int(s.lateness_seconds * 1000)
        self.burst_cap = s.burst_cap_per_minute
        self.default_gap_days = s.default_gap_days
        self.refresh_ms = int(s.refresh_every_hours * 3_600_000)
        self.refresh_for_ms = int(s.refresh_for_days * MS_PER_DAY)
        # a sweep's outcome carries the churn probability for its score record; a shell that
        # makes no score records (replay) turns this off, and a sweep predicts only when a
        # trigger rule asks
        self.sweep_probability = True
        self.badge_names = {
            name_hash(b.name): b.name
            for b in getattr(config.triggers.rule("milestone"), "badges", ())
        }
        self.dimensions = DimensionModel(config)
        self.calibration = Calibration(config, self.dimensions)
        self.satisfaction = SatisfactionModel(config)
        self.tiers = TierPolicy(config)
        # population state for callers that drive the engine without partitions (tests)
        self.unpartitioned = self.partition_shared(0)
        self.type_names = {type_code(t): t for t in config.event_types}
        self.type_codes = {t: type_code(t) for t in config.event_types}
        if len(self.type_names) != len(config.event_types):
            raise ValueError("two event type names share a type code; rename one")
        self.money_sign: dict[str, float] = {}
        for t, spec in config.event_types.items():
            w = spec.amount_weights.get("transactional", 0.0)
            self.money_sign[t] = 1.0 if w > 0 else -1.0 if w < 0 else 0.0

    def partition_shared(
        self, partition: int, stored: PartitionState | None = None,
        exchange: SnapshotExchange | None = None, partitions: int = 1,
    ) -> PartitionShared:
        """A partition's shared state as this config keeps it (population window, on/off)."""
        return PartitionShared(
            stored, partition, partitions, exchange=exchange,
            window_days=self.config.scoring.population.window_days,
            enabled=self.calibration.tracking,
        )

    # -- events ---------------------------------------------------------------------------

    def apply(
        self,
        state: UserState | None,
        event: Event,
        watermark_ms: int,
        shared: PartitionShared | None = None,
    ) -> Outcome:
        """Count one validated event against the user's state (mutated in place); `shared`
        is the partition's population state that rules read and update."""
        ts = event.ts_ms
        # the driver has let the partition's reference catch up; direct callers (tests) run
        # one partition, which never waits for another
        (shared or self.unpartitioned).advance(ts, self.lateness_ms, force=True)
        if state is None:
            if ts < watermark_ms:
                return Outcome("late", state)
            state = UserState()
        # Duplicates first: a producer retry, or a record reprocessed after a crash, carries
        # the same event_id (and time) and must not be dead-lettered as late.
        h = id_hash(event.event_id)
        ids = state.recent_ids
        for i in range(0, len(ids), 2):
            if ids[i] == h:
                return Outcome("duplicate", state)
        if ts < watermark_ms:
            return Outcome("late", state)
        # ids are kept while a duplicate could still be accepted (a second of slack)
        ids = state.recent_ids = _pairs_from(ids, 1, watermark_ms // 1000 - 1)
        ids += (h, ts // 1000)
        # Anti-cheat: at most burst_cap counted events per user per minute of event time.
        minute = ts // MS_PER_MINUTE
        burst = state.burst = _pairs_from(state.burst, 0, watermark_ms // MS_PER_MINUTE)
        for i in range(0, len(burst), 2):
            if burst[i] == minute:
                if burst[i + 1] >= self.burst_cap:
                    state.capped += 1
                    return Outcome("capped", state)
                burst[i + 1] += 1
                break
        else:
            burst += (minute, 1)
        return self._count(state, event, shared)

    def _count(self, state: UserState, event: Event, shared: PartitionShared | None) -> Outcome:
        shared = shared if shared is not None else self.unpartitioned
        ts = event.ts_ms
        etype = event.type
        day = ts // MS_PER_DAY
        first = state.events == 0
        user_id = event.user_id
        examples: list[ChurnExample] = []
        was_churned = state.churn.churned_ms != 0
        if self.churn is not None:
            # before the event changes the state: open observations see the state they saw
            examples = self.churn.on_activity(state, user_id, event)
            if examples and not was_churned:
                was_churned = any(e.label == 1 for e in examples)
        previous_last = state.last_ms
        amount = event.amount * self.money_sign[etype] if event.amount else 0.0
        state.last_ms = self.dimensions.add(state.dims, state.last_ms, etype, ts, event.amount)
        if first or ts < state.first_ms:
            state.first_ms = ts
        new_day = mark_active(state, day)
        code = self.type_codes[etype]
        add_count(state, day, code, amount)
        state.lifetime[code] = state.lifetime.get(code, 0) + 1
        state.events += 1
        state.monetary += amount
        props = event.properties
        rating = props.rating if props is not None else None
        if rating is not None and self.satisfaction.rates(etype, rating):
            self.satisfaction.add(state, rating, ts)
        now = state.last_ms
        score, lines, placement, previous_tier = self._judge(
            state, now, shared, self.dimensions.changes[etype]
        )
        moment = Moment(user_id, state, ts, shared, event=event, new_active_day=new_day)
        for extension in self.extensions:
            extension.on_event(moment)
        triggers: list[Trigger] = []
        if self.triggers is not None:
            ctx = TriggerContext(
                user_id=user_id, now_ms=now, event=event, state=state,
                view=self.view, previous_tier=previous_tier,
                tier=self.tiers.rank(state), tier_names=self.tiers.names,
                shared=shared, score=score, tier_lines=lines, percentiles=placement.percentiles,
                # predicted only if a rule or an admitted trigger asks for it
                churn_probability=self.predict_state,
                was_churned=was_churned,
                gap_before_ms=0 if first else max(0, ts - previous_last),
                new_active_day=new_day, signals=moment.signals,
            )
            triggers = self.triggers.evaluate(ctx)
            self._after_admission(moment, triggers, ctx)
        return Outcome("scored", state, now, triggers, examples).took(moment)

    def _after_admission(
        self, moment: Moment, triggers: list[Trigger], ctx: TriggerContext
    ) -> None:
        """Extensions that follow what was emitted (points earned, experiments entered)."""
        moment.suppressed = ctx.suppressed
        if triggers:
            for extension in self.extensions:
                extension.on_triggers(moment, triggers)

    # -- messages from other users ------------------------------------------------------------

    def receive(
        self,
        state: UserState | None,
        message: Routed,
        shared: PartitionShared | None = None,
        watermark_ms: int = 0,
    ) -> Outcome:
        """A message another user's moment sent to `message.to` (a referral step...);
        `watermark_ms`: the recipient partition's, which may be past the message's time."""
        state = state if state is not None else UserState()
        shared = shared if shared is not None else self.unpartitioned
        now = max(message.at_ms, state.last_ms)
        moment = Moment(message.to, state, message.at_ms, shared, message=message,
                        watermark_ms=watermark_ms)
        for extension in self.extensions:
            extension.on_message(moment)
        triggers = self._judge_signals(message.to, state, now, shared, moment)
        return Outcome("received", state, None, triggers).took(moment)

    def _judge_signals(
        self, user_id: str, state: UserState, now: int, shared: PartitionShared, moment: Moment
    ) -> list[Trigger]:
        """A moment without an event or a sweep of its own: only the extensions' signals
        are judged (no trigger context is built when there are none)."""
        if self.triggers is None or not moment.signals:
            return []
        rank = self.tiers.rank(state)
        ctx = TriggerContext(
            user_id=user_id, now_ms=now, event=None, state=state,
            view=self.view, previous_tier=rank, tier=rank,
            tier_names=self.tiers.names, shared=shared,
            signals=moment.signals, signals_only=True,
        )
        triggers = self.triggers.evaluate(ctx)
        self._after_admission(moment, triggers, ctx)
        return triggers

    # -- time passing -----------------------------------------------------------------------

    def sweep(
        self,
        state: UserState,
        user_id: str,
        watermark_ms: int,
        shared: PartitionShared | None = None,
    ) -> Outcome:
        """The watermark moved past something due for this silent user."""
        if not state.events:
            return self.sweep_extensions(state, user_id, watermark_ms, shared)
        shared = shared if shared is not None else self.unpartitioned
        now = max(watermark_ms, state.last_ms)
        examples: list[ChurnExample] = []
        if self.churn is not None:
            examples = self.churn.on_watermark(state.churn, user_id, now)
        score, lines, placement, previous_tier = self._judge(state, now, shared, ())
        probability = self.predict_state(state, now) if self.sweep_probability else None
        # rules read the record's value, or predict when asked (the same value either way:
        # only churn hooks change state.churn, and the model does not move within a sweep)
        probability_now = ((lambda _state, _now: probability) if self.sweep_probability
                           else self.predict_state)

        moment = Moment(user_id, state, now, shared)
        for extension in self.extensions:
            extension.on_sweep(moment)
        triggers: list[Trigger] = []
        if self.triggers is not None:
            ctx = TriggerContext(
                user_id=user_id, now_ms=now, event=None, state=state, view=self.view,
                previous_tier=previous_tier, tier=self.tiers.rank(state),
                tier_names=self.tiers.names, shared=shared, score=score,
                tier_lines=lines, percentiles=placement.percentiles,
                churn_probability=probability_now, signals=moment.signals,
            )
            triggers = self.triggers.evaluate(ctx)
            self._after_admission(moment, triggers, ctx)
        state.last_sweep_ms = now
        return Outcome("swept", state, now, triggers, examples, probability).took(moment)

    def sweep_extensions(
        self, state: UserState, user_id: str, now: int, shared: PartitionShared | None
    ) -> Outcome:
        """Extensions only: for a user with no counted event yet (known from messages), and
        for news that reached a partition after its due time had passed (the driver): the
        user's own judgements (tier, churn, refresh) keep their times, so they do not depend
        on when a message arrived."""
        shared = shared if shared is not None else self.unpartitioned
        moment = Moment(user_id, state, now, shared, watermark_ms=now)
        for extension in self.extensions:
            extension.on_sweep(moment)
        triggers = self._judge_signals(user_id, state, now, shared, moment)
        return Outcome("swept", state, None, triggers).took(moment)

    def next_due_ms(self, state: UserState) -> int | None:
        """The earliest watermark at which `sweep` has something to do for this user."""
        if not state.events:  # known only from messages (an invite): nothing to score yet
            return self._extensions_due(state)
        return earliest(self.own_due_ms(state), self._extensions_due(state))

    def own_due_ms(self, state: UserState) -> int | None:
        """When the user's own judgements (refresh, tier, churn, trigger rules) are due: times
        set by the user's events alone, never by when another partition's news arrived.

        Asked after every event and sweep, so it builds no list: each candidate is folded in
        as it comes."""
        due: int | None = None
        # every user is revisited daily (not pushed back by each event), while not long gone
        refresh_ms = self.refresh_ms
        if refresh_ms:
            refresh = (state.last_sweep_ms or state.first_ms) + refresh_ms
            if refresh <= state.last_ms + self.refresh_for_ms:
                due = refresh
        due = earliest(due, self.tiers.next_due_ms(state))
        if self.churn is not None:
            due = earliest(due, self.churn.next_due_ms(state.churn))
        if self.triggers is not None:
            due = earliest(due, self.triggers.next_due_ms(state))
        return due

    def _extensions_due(self, state: UserState) -> int | None:
        due: int | None = None
        for extension in self._due_extensions:
            due = earliest(due, extension.next_due_ms(state))
        return due

    # -- standing in the population ----------------------------------------------------------

    def _judge(
        self, state: UserState, now_ms: int, shared: PartitionShared, changed: Sequence[int]
    ) -> tuple[float, list[float], Placement, int]:
        """Judge the user's tier at `now_ms`: returns the score judged, the tier lines it was
        judged against, the placement and the previous tier's rank. Files the user's entry
        (with the tier now held) in the partition's population. `changed`: the dimensions
        the moment changed (the others only decayed, which leaves their placement)."""
        calibration = self.calibration
        keys: list[int] = []
        placement = NOT_PLACED
        if calibration.tracking:
            keys = calibration.dimension_keys(state.dims, state.last_ms, state.pop_keys, changed)
            placement = calibration.place(keys, shared.reference)
        score, lines = self._score_and_lines(state, now_ms, shared, placement)
        previous_tier = self.tiers.update(state, score, now_ms, lines)
        if calibration.tracking:
            if placement.composite_key is not None:
                keys.append(composite_entry(self.tiers.rank(state), placement.composite_key))
            shared.population.place(state, state.anchor_day, keys)
        return score, lines, placement, previous_tier

    def _score_and_lines(
        self, state: UserState, now_ms: int, shared: PartitionShared, placement: Placement
    ) -> tuple[float, list[float]]:
        if self.calibration.population_mode and placement.population_score is not None:
            return placement.population_score, self.calibration.tier_lines(shared.reference)
        dims = self.dimensions
        values = state.dims if now_ms <= state.last_ms else dims.at(state.dims, state.last_ms,
                                                                    now_ms)
        return dims.composite(values), self.tiers.absolute_lines

    def standing(
        self, state: UserState, now_ms: int, shared: PartitionShared | None = None
    ) -> Standing:
        """The user's score at `now_ms` as records show it, read-only."""
        shared = shared if shared is not None else self.unpartitioned
        calibration = self.calibration
        placement = NOT_PLACED
        if calibration.tracking:
            placement = calibration.place(
                calibration.dimension_keys(state.dims, state.last_ms), shared.reference
            )
        score, lines = self._score_and_lines(
            state, max(now_ms, state.last_ms), shared, placement
        )
        reference = shared.reference
        return Standing(
            score=score,
            calibration="absolute" if lines is self.tiers.absolute_lines else "population",
            percentiles=placement.percentiles,
            reference_day=reference.day if reference.users else None,
            reference_users=reference.users,
            tier_reason=self.tiers.reason(state, score, lines),
        )

    # -- reading ----------------------------------------------------------------------------

    def view(self, state: UserState, now_ms: int) -> UserView:
        return UserView(state, now_ms, self.dimensions, self.default_gap_days)

    def predict_view(self, view: UserView) -> float | None:
        return self.predict_state(view.state, view.now_ms)

    def predict_state(self, state: UserState, now_ms: int) -> float | None:
        return self.churn.predict(state.churn, now_ms) if self.churn is not None else None

    def score_record(
        self,
        state: UserState,
        user_id: str,
        as_of_ms: int,
        churn_probability: float | None = None,
        shared: PartitionShared | None = None,
    ) -> ScoreRecord:
        """The user's score record at `as_of_ms` (decay and windows evaluated then), placed
        against the reference in force on the user's partition (`shared`)."""
        view = self.view(state, as_of_ms)
        if churn_probability is None:
            churn_probability = self.predict_view(view)
        record = score_record(
            view, user_id, self.tiers.name(state), self.standing(state, as_of_ms, shared),
            churn_probability, self.type_names,
            format_rfc3339_ms(view.now_ms), format_rfc3339_ms(state.last_ms),
            self.churn.model_tag() if self.churn is not None else None,
        )
        record.badges = [self.badge_names[h] for h in state.triggers.badges
                         if h in self.badge_names]
        r = state.referral
        record.referrals = ReferralsRecord(invited=r.sent, credited=r.credited,
                                           withheld=r.flagged)
        if self.config.points.enabled:
            record.points = balance(state.points, view.now_ms)
        return record
