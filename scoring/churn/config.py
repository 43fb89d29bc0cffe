"""Configuration of the churn section (`[churn]` in the rules file)."""

from __future__ import annotations

import msgspec

from scoring.errors import ConfigError

# What signs model artifacts when no key is configured: public, so a worker refuses it
# outside the demo unless told `--insecure-dev-key` (streams/secrets.py).
DEV_SIGNING_KEY = "engage-dev-signing-key"


class ChurnConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Churn label and model settings (docs/models.md)."""

    horizon_days: float = 14.0
    # the outcome: which counted events are a *return* (empty: every counted event), and
    # which users are in the population that is observed and scored (last return within
    # this many days; 0: everyone with a return, observed up to two years of silence)
    return_types: tuple[str, ...] = ()
    population_days: float = 0.0
    model: str = "lifetime"
    shadow: str = ""
    signing_key: str = ""  # "": from ENGAGE_MODEL_SIGNING_KEY(_FILE), else the dev key
    publish_every_examples: int = 200
    publish_every_seconds: float = 30.0
    min_examples_per_class: int = 20  # no model is published before it saw this many of each
    bgnbd_refit_days: float = 7.0  # event time between two fits of the BG/NBD parameters
    bgnbd_sample_users: int = 10_000  # customers whose summaries the fit uses (bottom-k hash)
    keep_versions: int = 50  # signed versions kept on churn.models for `engage model rollback`

    @property
    def max_silence_days(self) -> float:
        """The longest silence an observation point is placed at."""
        return self.population_days or DEFAULT_MAX_SILENCE_DAYS


DEFAULT_MAX_SILENCE_DAYS = 730.0


def check_churn_config(c: ChurnConfig, event_types: set[str] | None = None) -> None:
    from scoring.churn.registry import known_model

    if c.publish_every_examples < 1:
        raise ConfigError("churn.publish_every_examples", "must be at least 1")
    if c.publish_every_seconds <= 0:
        raise ConfigError("churn.publish_every_seconds", "must be greater than 0")
    if c.min_examples_per_class < 1:
        raise ConfigError("churn.min_examples_per_class", "must be at least 1")
    if c.population_days != 0 and not 1 <= c.population_days <= 36_500:
        raise ConfigError("churn.population_days", "must be 0 (everyone) or 1 to 36500 days")
    if not c.bgnbd_refit_days > 0:
        raise ConfigError("churn.bgnbd_refit_days", "must be greater than 0")
    if c.bgnbd_sample_users < 100:
        raise ConfigError("churn.bgnbd_sample_users", "must be at least 100")
    if c.keep_versions < 1:
        raise ConfigError("churn.keep_versions", "must be at least 1")
    for i, name in enumerate(c.return_types):
        if event_types is not None and name not in event_types:
            raise ConfigError(
                f"churn.return_types[{i}]", f"unknown event type {name!r} (not in event_types)"
            )
    if len(set(c.return_types)) != len(c.return_types):
        raise ConfigError("churn.return_types", "lists an event type twice")
    for key, name in (("churn.model", c.model), ("churn.shadow", c.shadow)):
        if name and not known_model(name):
            raise ConfigError(key, f"unknown model {name!r} (see `engage model list`)")
