"""The records engage publishes, as typed structs (encoded to JSON by msgspec).

Field names and order are the public contracts: engagement-score/v2, trigger/v1 and
churn-example/v1 (JSON Schemas in scoring/schemas/, docs in docs/). The core fills what it
knows; the shell stamps the wall-clock fields (`emitted_at`, `expires_at`) when it sends.
"""

from __future__ import annotations

from typing import Any

import msgspec


class TriggerReason(msgspec.Struct, kw_only=True):
    rule: str
    features: dict[str, Any]


class Trigger(msgspec.Struct, kw_only=True):
    """trigger/v1: one moment a rule fired for a user."""

    schema: str = "trigger/v1"
    trigger_id: str
    type: str
    user_id: str
    episode: str
    variant: str  # treatment | control
    event_time: str  # the event time that caused it (RFC 3339, UTC, ms)
    emitted_at: str = ""  # wall clock when sent (stamped by the shell)
    expires_at: str = ""  # emitted_at + the rule's expires_hours (stamped by the shell)
    reason: TriggerReason
    score: float
    tier: str
    churn_probability: float | None
    details: dict[str, Any]


class Suppression(msgspec.Struct, kw_only=True):
    """trigger-suppressed/v1, on triggers.audit: a trigger a rule wanted that a reward
    budget held back (its would-be id, so analyses can join it)."""

    schema: str = "trigger-suppressed/v1"
    trigger_id: str
    type: str
    user_id: str
    episode: str
    reason: str  # budget
    event_time: str
    detail: str
    suppressed_at: str = ""  # wall clock when sent (stamped by the shell)


class Windows(msgspec.Struct, kw_only=True):
    events_7d: int
    events_28d: int
    active_days_7: int
    active_days_28: int
    stickiness: float | None  # null until the user's 28-day window is filled
    counts_7d: dict[str, int]
    counts_28d: dict[str, int]


class Rfm(msgspec.Struct, kw_only=True):
    recency_days: float
    frequency_28d: int
    monetary_28d: float
    monetary_total: float


class StreakRecord(msgspec.Struct, kw_only=True):
    current: int
    longest: int


class ReferralsRecord(msgspec.Struct, kw_only=True):
    invited: int  # invites sent
    credited: int  # invitees credited (referral_converted)
    withheld: int  # conversions withheld as suspicious (referral_flagged)


class TierReason(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why a user has their tier: `code` is one of earned, held_within_margin,
    held_by_grace, review_pending, promotion_pending."""

    code: str
    text: str
    line: float  # the score line of the user's tier
    grace_until: str | None = None  # event time the grace period ends (held_by_grace)


class ReferenceInfo(msgspec.Struct, kw_only=True):
    """The population the percentiles were read against."""

    through_day: str | None  # the reference describes active users as of the end of this day
    users: int  # users active in the reference's window


class Satisfaction(msgspec.Struct, kw_only=True):
    score: float | None  # 0-100 decayed mean of ratings; null: never rated
    ratings: int
    last_rating: int | None
    last_bad_rating_at: str | None


class ScoreRecord(msgspec.Struct, kw_only=True):
    """engagement-score/v2: a user's scores at `as_of` (event time)."""

    schema: str = "engagement-score/v2"
    user_id: str
    as_of: str
    engagement_score: float
    calibration: str  # population | absolute: what engagement_score and the tier lines are
    absolute_score: float  # the saturating composite (v1's engagement_score)
    dimensions: dict[str, float]
    percentiles: dict[str, float | None]
    reference: ReferenceInfo
    tier: str
    tier_reason: TierReason
    satisfaction: Satisfaction
    churn_probability: float | None
    days_since_last_event: float
    last_event_at: str
    windows: Windows
    rfm: Rfm
    streak: StreakRecord
    tenure_days: float
    typical_gap_days: float
    silence_ratio: float
    events_counted: int
    events_capped: int
    churn_model: str | None = None
    badges: list[str] = msgspec.field(default_factory=list)  # earned milestone badges
    referrals: ReferralsRecord | None = None
    points: int | None = None  # the ledger's balance (None: the ledger is off)


class CustomerSummary(msgspec.Struct, kw_only=True):
    """A user's lifetime over return events when the example was resolved (UTC day numbers):
    the trainer fits BG/NBD's population parameters from a sample of these."""

    first_day: int
    last_day: int
    repeat_days: int  # return days after the first (BG/NBD's frequency x)


class ChurnExample(msgspec.Struct, kw_only=True):
    """churn-example/v2: a resolved observation point, what the trainer learns from.

    v2 (issue #11): lifetime features (scoring.churn.layout), the point's `weight` (the days
    of silence it stands for) and the user's `customer` summary."""

    schema: str = "churn-example/v2"
    user_id: str
    observed_at: str
    resolved_at: str
    label: int
    weight: float = 1.0
    features: dict[str, float]
    customer: CustomerSummary | None = None


def stamp(trigger: Trigger, emitted_ms: int, expires_hours: float) -> Trigger:
    """The wall-clock fields of a trigger about to be sent: when, and until when it is
    worth acting on (counted from sending, so a backfill's triggers do not expire at once)."""
    from scoring.timeutil import MS_PER_HOUR, format_rfc3339_ms

    trigger.emitted_at = format_rfc3339_ms(emitted_ms)
    trigger.expires_at = format_rfc3339_ms(emitted_ms + int(expires_hours * MS_PER_HOUR))
    return trigger
