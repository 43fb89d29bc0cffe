"""The engine's churn hooks: lifetime summary, observation points, delayed labels (docs/models.md).

The outcome (`[churn]`): a **return** is a counted event of one of `return_types` (all counted
events when empty); a user is **churned at a moment t** when they make no return in
(t, t + horizon]. The **population** is the users with a return, whose latest return is within
`population_days` of the moment (everyone when 0).

Observation points (scoring.churn.schedule): each return anchors one point per octave of the
silence that follows — [0, 1) day, [1, 2), [2, 4), ... up to the population's longest silence
— at hashed offsets, so their number grows with returns, not with users x days. A point opens
when the silence reaches it; nothing visits the user then. It resolves:

- **0** on the next return at t with observed < t <= observed + horizon (a return exactly at
  the horizon counts);
- **1** when the watermark passes observed + horizon with no return (the sweep is due at
  horizon + 1 ms), or when the next return comes later than that.

Features are recomputed at resolution from the unchanged state (only a return changes what
they read, and a return resolves the points before it is recorded), at the point's time, with
the BG/NBD parameters in use then. Each example carries the point's `weight` (the days of
silence its octave stands for) and the user's summary, from which the trainer fits BG/NBD.

A late return (before the anchor, within the allowed lateness) updates the lifetime summary
exactly as in time order; it resolves nothing. The state is then independent of arrival order;
examples resolved by a return that another, earlier return would have preceded in event time
can differ (a point the earlier return would have resolved first).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

from scoring.churn.layout import FEATURE_NAMES
from scoring.churn.lifetime import (
    LifetimeConfig,
    lifetime_features,
    record_return,
)
from scoring.churn.priors import PopulationParams
from scoring.churn.schedule import ObservationSchedule, ResolvedPoint
from scoring.churn.state import RECENT_DAYS, ChurnState
from scoring.config import EngageConfig
from scoring.events import Event
from scoring.records import ChurnExample, CustomerSummary
from scoring.state import UserState, type_code
from scoring.timeutil import MS_PER_DAY, format_rfc3339_ms

Predict = Callable[[Sequence[float]], float | None]
_EXACT_BELOW = 2.0**31  # |x| x 1e6 under this: the product is within 2^-22 of the exact value


def round6(x: float) -> float:
    """round(x, 6), the same float, about twice as fast (examples carry features rounded to
    6 decimals: 18 a example, a few million in a backtest).

    round() finds the decimal through dtoa and parses it back. Here k, the nearest integer
    to x * 10^6 (ties to even), is read off the float product y = x * 1e6, whose error is
    below 2^-22 while |y| < 2^31: its fraction decides k unless it lies within 1e-6 of a
    half, and those rare values are left to round() itself. k / 1e6 divides two exact
    floats, so it is the float nearest to k * 10^-6, which is what round() returns; a zero
    keeps the sign of x, as round() does. Anything else (large, infinite, NaN): round()."""
    y = x * 1e6
    if -_EXACT_BELOW < y < _EXACT_BELOW:
        k = math.floor(y)
        fraction = y - k
        if fraction > 0.500001:
            k += 1
        elif fraction >= 0.499999:
            return round(x, 6)
        return k / 1e6 if k else math.copysign(0.0, x)
    return round(x, 6)


def user_key(user_id: str) -> int:
    """The 16-bit hash of a user id that places their observation points (never 0)."""
    return zlib.crc32(user_id.encode()) & 0xFFFF or 1


class ChurnLabels:
    """The engine's ChurnHooks. `predict` maps a feature vector (FEATURE_NAMES order) to the
    champion's probability; `params` gives the BG/NBD and MBG/NBD parameters of the model in use."""

    def __init__(
        self,
        config: EngageConfig,
        predict: Predict = lambda _features: None,
        model_tag: Callable[[], str | None] = lambda: None,
        params: Callable[[], PopulationParams | None] = lambda: None,
    ) -> None:
        c = config.churn
        self.horizon_ms = round(c.horizon_days * MS_PER_DAY)
        self.lifetime = LifetimeConfig(c.horizon_days)
        self.schedule = ObservationSchedule(c.horizon_days, c.max_silence_days)
        self.population_ms = round(c.population_days * MS_PER_DAY) if c.population_days else 0
        self.returns = frozenset(c.return_types) if c.return_types else None
        self.money: dict[str, float] = {}  # +1 purchase-like, -1 refund-like, 0 otherwise
        for name, spec in config.event_types.items():
            w = spec.amount_weights.get("transactional", 0.0)
            self.money[name] = 1.0 if w > 0 else -1.0 if w < 0 else 0.0
        self._paid_codes = [type_code(t) for t, sign in self.money.items() if sign > 0]
        self._predict = predict
        self.model_tag = model_tag  # "name@version" of the model behind predict()
        self.params = params

    # -- reading ----------------------------------------------------------------------------

    def in_population(self, cs: ChurnState, now_ms: int) -> bool:
        if cs.active_days == 0:
            return False
        return not self.population_ms or now_ms - cs.last_ms <= self.population_ms

    def features(self, cs: ChurnState, now_ms: int) -> list[float]:
        """The model's input at `now_ms` (FEATURE_NAMES order)."""
        return lifetime_features(cs, now_ms, self.lifetime, self.params())

    def predict(self, cs: ChurnState, now_ms: int) -> float | None:
        if not self.in_population(cs, now_ms):
            return None
        return self._predict(self.features(cs, now_ms))

    # -- events and sweeps ------------------------------------------------------------------

    def on_activity(self, state: UserState, user_id: str, event: Event) -> list[ChurnExample]:
        """A counted event, before it changes `state`."""
        if self.returns is not None and event.type not in self.returns:
            return []
        cs = state.churn
        ts = event.ts_ms
        examples: list[ChurnExample] = []
        if cs.active_days == 0:
            cs.key = user_key(user_id)
            if state.events and self.returns is None:
                self._seed(state)
        if cs.active_days and ts > cs.last_ms:
            done = self.schedule.on_event(cs.key, cs.last_ms, cs.resolved, ts)
            if done:
                examples = [self._example(user_id, cs, d) for d in done]
                cs.examples += len(examples)
            cs.resolved = 0
        cs.churned_ms = 0  # active again (the engine read the flag before calling)
        amount = event.amount * self.money[event.type] if event.amount else 0.0
        record_return(cs, ts, amount, self.lifetime)
        if examples:
            # the summary at resolution includes the return that resolved them: without it
            # the trainer's customer sample lags every customer by their newest return, and
            # the BG/NBD fit on it degenerates (measured with `engage backtest` on CDNOW)
            customer = CustomerSummary(first_day=cs.first_day, last_day=cs.last_day,
                                       repeat_days=cs.active_days - 1)
            for example in examples:
                example.customer = customer
        return examples

    def on_watermark(
        self, cs: ChurnState, user_id: str, watermark_ms: int
    ) -> list[ChurnExample]:
        """Label the points whose horizon the watermark passed as churned."""
        if cs.active_days == 0:
            return []
        done, cs.resolved = self.schedule.on_watermark(
            cs.key, cs.last_ms, cs.resolved, watermark_ms
        )
        if not done:
            return []
        cs.churned_ms = done[-1].resolved_ms
        cs.examples += len(done)
        return [self._example(user_id, cs, d) for d in done]

    def next_due_ms(self, cs: ChurnState) -> int | None:
        if cs.active_days == 0:
            return None
        return self.schedule.next_due_ms(cs.key, cs.last_ms, cs.resolved)

    # -- internals --------------------------------------------------------------------------

    def _example(self, user_id: str, cs: ChurnState, done: ResolvedPoint) -> ChurnExample:
        observed = done.point.observed_ms
        values = self.features(cs, observed)
        return ChurnExample(
            user_id=user_id,
            observed_at=format_rfc3339_ms(observed),
            resolved_at=format_rfc3339_ms(done.resolved_ms),
            label=done.label,
            weight=done.point.weight,
            features=dict(zip(FEATURE_NAMES, map(round6, values), strict=True)),
            customer=CustomerSummary(  # BG/NBD's frequency x (summary_at) at the point
                first_day=cs.first_day, last_day=cs.last_day, repeat_days=cs.active_days - 1
            ),
        )

    def _seed(self, state: UserState) -> None:
        """A user with history from before churn kept a lifetime summary (engage 0.1 state):
        with every counted event a return, the activity fields give it (return days, first
        and last day, spend exactly; the decayed counts from the 64 days of activity bits;
        the gap variance starts at 0)."""
        cs = state.churn
        cs.first_day, cs.last_day, cs.last_ms = state.first_day, state.anchor_day, state.last_ms
        cs.active_days = state.active_days
        cs.spend = state.monetary
        cs.paid = sum(state.lifetime.get(code, 0) for code in self._paid_codes)
        bits = state.active_bits
        cs.recent_days = bits & ((1 << RECENT_DAYS) - 1)
        older = bits >> RECENT_DAYS
        if older:
            cs.before_recent = state.anchor_day - (RECENT_DAYS + (older & -older).bit_length() - 1)
        elif cs.active_days > bin(cs.recent_days).count("1"):
            cs.before_recent = state.first_day  # older days are not kept: the earliest known
        short, long = self.lifetime.tau_short_days, self.lifetime.tau_long_days
        ages = [i for i in range(bits.bit_length()) if bits >> i & 1]
        cs.pulse_short = sum(math.exp(-i / short) for i in ages)
        cs.pulse_long = sum(math.exp(-i / long) for i in ages)
