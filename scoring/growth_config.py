"""Configuration of the growth features: referrals, points, leaderboards and experiment
outcomes (`[referrals]`, `[points]`, `[leaderboards]`, `[experiments]` in the rules file)."""

from __future__ import annotations

import msgspec

from scoring.errors import ConfigError


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ReferralsConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Who is credited for a referral, when, and which referrals look like fraud."""

    enabled: bool = True
    qualify_event_types: tuple[str, ...] = ("purchase",)  # the invitee's qualifying action...
    qualify_active_days: int = 0  # ...or this many active days (0: not used)
    window_days: float = 30.0  # the invitee must qualify within this long of the invite
    hold_days: float = 1.0  # a conversion is credited after this review period, if clean
    ring_depth: int = 5  # invite chains this long are checked for rings
    thin_max_active_days: int = 1  # an invitee with no more active days...
    thin_max_events: int = 2  # ...and no more events than this at qualifying has no life of
    farm_min_thin: int = 3  # its own; this many such invitees make the referrer a farm
    burst_count: int = 3  # this many conversions of one referrer...
    burst_minutes: float = 60.0  # ...within this long is a burst: flagged


class PointsConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An optional ledger: admitted triggers earn points, `reward_redeemed` spends them."""

    enabled: bool = False
    earn: dict[str, int] = msgspec.field(default_factory=dict)  # trigger type -> points
    expire_days: float = 365.0
    redeem_event_type: str = "reward_redeemed"  # properties.amount = points to spend


class LeaderboardsConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Cluster-wide leaderboards of points earned by period, kept per partition."""

    enabled: bool = True
    size: int = 100  # entries kept per partition, period and measure


class ExperimentsConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Live outcome of each trigger type's holdout experiment (intent to treat)."""

    window_days: float = 7.0
    outcome_event_types: tuple[str, ...] = ()  # () = any counted event is a return


def check_growth_config(
    referrals: ReferralsConfig, points: PointsConfig, event_types: set[str],
    trigger_types: set[str],
) -> None:
    for i, t in enumerate(referrals.qualify_event_types):
        if t not in event_types:
            raise ConfigError(f"referrals.qualify_event_types[{i}]", f"unknown event type {t!r}")
    for key, value in (("window_days", referrals.window_days),
                       ("hold_days", referrals.hold_days)):
        if value < 0:
            raise ConfigError(f"referrals.{key}", "must not be negative")
    if not 1 <= referrals.ring_depth <= 10:
        raise ConfigError("referrals.ring_depth", "must be between 1 and 10")
    for t, n in points.earn.items():
        if t not in trigger_types:
            raise ConfigError(f"points.earn.{t}", "not a trigger type")
        if n < 0:
            raise ConfigError(f"points.earn.{t}", "must not be negative")
    if points.redeem_event_type not in event_types:
        raise ConfigError("points.redeem_event_type", "unknown event type")
    if points.expire_days <= 0:
        raise ConfigError("points.expire_days", "must be greater than 0")
