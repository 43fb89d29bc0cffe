"""Configuration of the churn section (`[churn]` in the rules file)."""

from __future__ import annotations

import msgspec

from scoring.errors import ConfigError

# What signs model artifacts when no key is configured: public, so a worker refuses it
# outside the demo unless told `--insecure-dev-key` (streams/secrets.py).
DEV_SIGNING_KEY = "engage-dev-signing-key"


class ChurnConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Churn label and model settings."""

    horizon_days: float = 14.0
    model: str = "logreg"
    shadow: str = ""
    signing_key: str = ""  # "": from ENGAGE_MODEL_SIGNING_KEY(_FILE), else the dev key
    publish_every_examples: int = 200
    publish_every_seconds: float = 30.0
    min_examples_per_class: int = 20  # no model is published before it saw this many of each


def check_churn_config(c: ChurnConfig) -> None:
    from scoring.churn.registry import known_model

    if c.publish_every_examples < 1:
        raise ConfigError("churn.publish_every_examples", "must be at least 1")
    if c.publish_every_seconds <= 0:
        raise ConfigError("churn.publish_every_seconds", "must be greater than 0")
    if c.min_examples_per_class < 1:
        raise ConfigError("churn.min_examples_per_class", "must be at least 1")
    for key, name in (("churn.model", c.model), ("churn.shadow", c.shadow)):
        if name and not known_model(name):
            raise ConfigError(key, f"unknown model {name!r} (see `engage model list`)")
