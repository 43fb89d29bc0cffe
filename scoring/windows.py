"""Event-time day windows on UserState: active-day bits, sparse per-type day counts, streaks.

Days are UTC day numbers (epoch ms // 86_400_000). Everything is relative to the user's
latest active day (`anchor_day`), so a late event inside the allowed lateness lands in the
same bucket it would have in order: windows never depend on arrival order.
"""

from __future__ import annotations

from scoring.state import UserState

WINDOW_DAYS = 28  # the longest window kept
BITS = 64
_MASK = (1 << BITS) - 1


def longest_run(bits: int) -> int:
    """Length of the longest run of set bits."""
    n = 0
    while bits:
        bits &= bits << 1
        n += 1
    return n


def _shift_anchor(state: UserState, day: int) -> None:
    k = day - state.anchor_day
    state.anchor_day = day
    state.active_bits = (state.active_bits << k) & _MASK if k < BITS else 0
    state.day_counts = {
        age + k: by_type for age, by_type in state.day_counts.items() if age + k < WINDOW_DAYS
    }
    if state.day_amounts:
        state.day_amounts = {
            age + k: v for age, v in state.day_amounts.items() if age + k < WINDOW_DAYS
        }


def mark_active(state: UserState, day: int) -> bool:
    """Record activity on `day`; True when it is a new active day for the user."""
    if state.active_days == 0:
        state.anchor_day = state.first_day = day
        state.active_bits = 1
        state.active_days = 1
        state.longest_streak = max(state.longest_streak, 1)
        return True
    if day > state.anchor_day:
        _shift_anchor(state, day)
    age = state.anchor_day - day
    if age >= BITS:
        return False  # older than the bits kept; cannot happen within the allowed lateness
    bit = 1 << age
    if state.active_bits & bit:
        return False
    state.active_bits |= bit
    state.active_days += 1
    state.first_day = min(state.first_day, day)
    state.longest_streak = max(state.longest_streak, longest_run(state.active_bits))
    return True


def add_count(state: UserState, day: int, code: int, amount: float) -> None:
    """Count one event of type `code` on `day` (already marked active)."""
    age = state.anchor_day - day
    if age >= WINDOW_DAYS:
        return
    by_type = state.day_counts.get(age)
    if by_type is None:
        state.day_counts[age] = {code: 1}
    else:
        by_type[code] = by_type.get(code, 0) + 1
    if amount:
        state.day_amounts[age] = state.day_amounts.get(age, 0.0) + amount


def counts_in_windows(state: UserState, now_day: int) -> tuple[dict[int, int], dict[int, int]]:
    """Events by type code over the 7 and the 28 days ending with `now_day`, in one pass."""
    offset = now_day - state.anchor_day
    week: dict[int, int] = {}
    month: dict[int, int] = {}
    for age, by_type in state.day_counts.items():
        age += offset
        if age < WINDOW_DAYS:
            for code, n in by_type.items():
                month[code] = month.get(code, 0) + n
                if age < 7:
                    week[code] = week.get(code, 0) + n
    return week, month


def amount_in_window(state: UserState, now_day: int, span: int) -> float:
    offset = now_day - state.anchor_day
    return sum(v for age, v in state.day_amounts.items() if age + offset < span)


def active_days_in_window(state: UserState, now_day: int, span: int) -> int:
    offset = now_day - state.anchor_day
    if offset >= span or state.active_days == 0:
        return 0
    mask = (1 << (span - offset)) - 1
    return (state.active_bits & mask).bit_count()


def current_streak(state: UserState, now_day: int) -> int:
    """Consecutive active days ending today or yesterday (alive until a day is missed)."""
    if state.active_days == 0 or now_day - state.anchor_day > 1:
        return 0
    bits = state.active_bits
    return ((~bits) & (bits + 1)).bit_length() - 1


def typical_gap_days(state: UserState, default: float) -> float:
    """The user's own mean gap between active days (order-independent: span / intervals)."""
    if state.active_days < 2:
        return default
    return (state.anchor_day - state.first_day) / (state.active_days - 1)
