"""The rules file: one TOML document read by the worker and by replay alike.

Built-in defaults live in `scoring/default_config.toml`; a user's file is merged over them
key by key, so it only needs what it changes. Every error names the key's path.
"""

from __future__ import annotations

import itertools
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec

from scoring.churn.config import ChurnConfig
from scoring.errors import ConfigError
from scoring.growth_config import (
    ExperimentsConfig,
    LeaderboardsConfig,
    PointsConfig,
    ReferralsConfig,
    check_growth_config,
)
from scoring.triggers.config import TriggersConfig, triggers_from_dict

__all__ = ["ConfigError", "EngageConfig", "config_from_dict", "load_config"]

DIMENSIONS: tuple[str, ...] = ("activity", "social", "creation", "advocacy", "transactional")


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class EventsConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Validation limits for incoming events."""

    max_bytes: int = 16_384
    max_future_seconds: float = 300.0
    # earlier event times are refused as unit mistakes (seconds sent as milliseconds);
    # histories from before 2000 (e.g. CDNOW, 1997) set an earlier floor
    min_timestamp: Annotated[datetime, msgspec.Meta(tz=True)] = datetime(2000, 1, 1, tzinfo=UTC)

    @property
    def min_timestamp_ms(self) -> int:
        return round(self.min_timestamp.timestamp() * 1000)


class EventTypeConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What one event type contributes to each dimension (per event, and per unit of amount)."""

    weights: dict[str, float] = msgspec.field(default_factory=dict)
    amount_weights: dict[str, float] = msgspec.field(default_factory=dict)


class DimensionConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A decayed sum with its own half-life, and how it enters the composite score."""

    half_life_days: float | None = None  # None: scoring.half_life_days
    composite_weight: float = 1.0
    saturation: float = 10.0  # the value at which this dimension reaches 63% of its share


class TierLevel(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A tier: from `min_score` on the absolute score, or, with population calibration, for
    the `top_share` of active users (None on the lowest tier: everyone else)."""

    name: str
    min_score: float
    top_share: float | None = None


class TiersConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    demotion_margin: float = 5.0
    demotion_grace_days: float = 7.0
    levels: tuple[TierLevel, ...] = ()


CALIBRATIONS = ("population", "absolute")


class PopulationConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The population reference: every user active in the last `window_days`, once, as
    shared by every partition (docs/scoring.md#calibration)."""

    enabled: bool = True  # off: no percentiles, no shared sketches (absolute mode only)
    window_days: int = 28
    min_users: int = 30  # below this many users in the reference, scores stay absolute
    relative_accuracy: float = 0.01


class SatisfactionConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Satisfaction: a decayed mean of `properties.rating` on rating events (0-100)."""

    event_types: tuple[str, ...] = ("review", "feedback")
    rating_min: int = 1
    rating_max: int = 5
    bad_at_most: int = 2  # a rating at or below this is a bad one
    good_at_least: int = 4
    half_life_days: float = 60.0


class ScoringConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    calibration: str = "population"  # or "absolute": fixed saturation and min_score tiers
    population: PopulationConfig = msgspec.field(default_factory=PopulationConfig)
    satisfaction: SatisfactionConfig = msgspec.field(default_factory=SatisfactionConfig)
    half_life_days: float = 14.0
    lateness_seconds: float = 3600.0
    burst_cap_per_minute: int = 20
    default_gap_days: float = 7.0
    refresh_every_hours: float = 24.0
    refresh_for_days: float = 90.0
    dimensions: dict[str, DimensionConfig] = msgspec.field(default_factory=dict)


class EngageConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    events: EventsConfig = msgspec.field(default_factory=EventsConfig)
    scoring: ScoringConfig = msgspec.field(default_factory=ScoringConfig)
    event_types: dict[str, EventTypeConfig] = msgspec.field(default_factory=dict)
    tiers: TiersConfig = msgspec.field(default_factory=TiersConfig)
    churn: ChurnConfig = msgspec.field(default_factory=ChurnConfig)
    triggers: TriggersConfig = msgspec.field(default_factory=TriggersConfig)
    referrals: ReferralsConfig = msgspec.field(default_factory=ReferralsConfig)
    points: PointsConfig = msgspec.field(default_factory=PointsConfig)
    leaderboards: LeaderboardsConfig = msgspec.field(default_factory=LeaderboardsConfig)
    experiments: ExperimentsConfig = msgspec.field(default_factory=ExperimentsConfig)

    def half_life_ms(self, dimension: str) -> float:
        dim = self.scoring.dimensions.get(dimension)
        days = dim.half_life_days if dim and dim.half_life_days else self.scoring.half_life_days
        return days * 86_400_000.0


def _defaults() -> dict[str, Any]:
    text = resources.files("scoring").joinpath("default_config.toml").read_text()
    return tomllib.loads(text)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _path_of(message: str) -> tuple[str, str]:
    """Split msgspec's "... - at `$.a.b[0]`" into (key path, problem)."""
    if " - at `$" in message:
        problem, _, where = message.rpartition(" - at `$")
        return where.rstrip("`").lstrip("."), problem
    if message.startswith("Object contains unknown field"):
        return message.split("`")[1], "unknown key (check its spelling)"
    return "(root)", message


def config_from_dict(data: dict[str, Any], *, with_defaults: bool = True) -> EngageConfig:
    """Build and check a config; raises ConfigError naming the key."""
    merged = _merge(_defaults(), data) if with_defaults else data
    merged = dict(merged)
    triggers = triggers_from_dict(merged.pop("triggers", {}), _path_of)
    try:
        config = msgspec.convert(merged, EngageConfig)
    except msgspec.ValidationError as exc:
        key, problem = _path_of(str(exc))
        if problem.startswith("Object contains unknown field"):
            field = problem.split("`")[1]
            key, problem = f"{key}.{field}".lstrip("."), "unknown key (check its spelling)"
        raise ConfigError(key, problem) from None
    config = msgspec.structs.replace(config, triggers=triggers)
    _check(config)
    return config


def load_config(path: str | Path | None = None) -> EngageConfig:
    """The defaults, overridden by the TOML file at `path` (if any)."""
    if path is None:
        return config_from_dict({})
    raw = Path(path).read_bytes()
    try:
        data = tomllib.loads(raw.decode())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(file)", f"{path} is not valid TOML: {exc}") from None
    return config_from_dict(data)


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(key, f"must be greater than 0, got {value}")


def _check_calibration(c: EngageConfig) -> None:
    s = c.scoring
    if s.calibration not in CALIBRATIONS:
        raise ConfigError("scoring.calibration", f"must be one of {CALIBRATIONS}")
    p = s.population
    if s.calibration == "population" and not p.enabled:
        raise ConfigError("scoring.population.enabled",
                          "population calibration needs the population reference")
    if not 1 <= p.window_days <= 63:
        raise ConfigError("scoring.population.window_days", "must be between 1 and 63")
    if p.min_users < 1:
        raise ConfigError("scoring.population.min_users", "must be at least 1")
    if not 0.001 <= p.relative_accuracy <= 0.1:
        raise ConfigError("scoring.population.relative_accuracy",
                          "must be between 0.001 and 0.1")
    levels = c.tiers.levels
    if levels[0].top_share not in (None, 1.0):
        raise ConfigError("tiers.levels[0].top_share", "the first tier holds everyone: omit it")
    if s.calibration == "population":
        previous = 1.0
        for i, level in enumerate(levels[1:], start=1):
            share = level.top_share
            if share is None or not 0 < share < previous:
                raise ConfigError(
                    f"tiers.levels[{i}].top_share",
                    "population calibration needs a top_share for every tier above the first, "
                    "between 0 and 1 and smaller than the tier below's",
                )
            previous = share
    r = s.satisfaction
    if not r.rating_min < r.rating_max:
        raise ConfigError("scoring.satisfaction.rating_max", "must be above rating_min")
    if not r.rating_min <= r.bad_at_most < r.good_at_least <= r.rating_max:
        raise ConfigError("scoring.satisfaction.good_at_least",
                          "need rating_min <= bad_at_most < good_at_least <= rating_max")
    _positive("scoring.satisfaction.half_life_days", r.half_life_days)
    for i, etype in enumerate(r.event_types):
        if etype not in c.event_types:
            raise ConfigError(f"scoring.satisfaction.event_types[{i}]",
                              f"{etype!r} is not a configured event type")


def _check(c: EngageConfig) -> None:
    s = c.scoring
    _positive("scoring.half_life_days", s.half_life_days)
    _positive("scoring.burst_cap_per_minute", s.burst_cap_per_minute)
    _positive("scoring.default_gap_days", s.default_gap_days)
    if s.refresh_every_hours < 0:
        raise ConfigError("scoring.refresh_every_hours", "must not be negative (0: no refresh)")
    if not 0 <= s.lateness_seconds <= 7 * 86_400:
        raise ConfigError("scoring.lateness_seconds", "must be between 0 and 604800 (7 days)")
    _positive("events.max_bytes", c.events.max_bytes)
    if c.events.max_future_seconds < 0:
        raise ConfigError("events.max_future_seconds", "must not be negative")
    if c.events.min_timestamp.year < 1970:
        raise ConfigError("events.min_timestamp", "must not be before 1970-01-01T00:00:00Z")
    for name, dim in s.dimensions.items():
        if name not in DIMENSIONS:
            raise ConfigError(f"scoring.dimensions.{name}", f"unknown dimension; use {DIMENSIONS}")
        if dim.half_life_days is not None:
            _positive(f"scoring.dimensions.{name}.half_life_days", dim.half_life_days)
        _positive(f"scoring.dimensions.{name}.saturation", dim.saturation)
        if dim.composite_weight < 0:
            raise ConfigError(f"scoring.dimensions.{name}.composite_weight", "must not be negative")
    if sum(c.scoring.dimensions[d].composite_weight for d in DIMENSIONS
           if d in c.scoring.dimensions) <= 0 and s.dimensions:
        raise ConfigError("scoring.dimensions", "at least one composite_weight must be positive")
    if not c.event_types:
        raise ConfigError("event_types", "at least one event type is required")
    for etype, spec in c.event_types.items():
        for kind, table in (("weights", spec.weights), ("amount_weights", spec.amount_weights)):
            for dim_name in table:
                if dim_name not in DIMENSIONS:
                    raise ConfigError(
                        f"event_types.{etype}.{kind}.{dim_name}",
                        f"unknown dimension; use {DIMENSIONS}",
                    )
    levels = c.tiers.levels
    if not levels:
        raise ConfigError("tiers.levels", "at least one tier is required")
    for i, (lo, hi) in enumerate(itertools.pairwise(levels)):
        if not hi.min_score > lo.min_score:
            raise ConfigError(
                f"tiers.levels[{i + 1}].min_score", "tiers must be listed in increasing min_score"
            )
    if levels[0].min_score != 0:
        raise ConfigError("tiers.levels[0].min_score", "the first tier must start at 0")
    if c.tiers.demotion_margin < 0:
        raise ConfigError("tiers.demotion_margin", "must not be negative")
    if c.tiers.demotion_grace_days < 0:
        raise ConfigError("tiers.demotion_grace_days", "must not be negative")
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        raise ConfigError("tiers.levels", "tier names must be unique")
    _check_calibration(c)
    _positive("churn.horizon_days", c.churn.horizon_days)
    if c.churn.horizon_days * 86_400 <= s.lateness_seconds:
        raise ConfigError("churn.horizon_days", "must be longer than scoring.lateness_seconds")
    from scoring.churn.config import check_churn_config
    from scoring.triggers.config import check_triggers_config

    check_churn_config(c.churn, set(c.event_types))
    check_triggers_config(c)
    check_growth_config(c.referrals, c.points, set(c.event_types), set(c.triggers.types()))
