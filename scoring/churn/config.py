"""Configuration of the churn section (`[churn]` in the rules file)."""

from __future__ import annotations

import os

import msgspec

SIGNING_KEY_ENV = "ENGAGE_MODEL_SIGNING_KEY"


class ChurnConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Churn label and model settings."""

    horizon_days: float = 14.0
    model: str = "logreg"
    shadow: str = ""
    signing_key: str = "engage-dev-signing-key"
    publish_every_examples: int = 200
    publish_every_seconds: float = 30.0

    def key_bytes(self) -> bytes:
        """The HMAC key of model artifacts: the environment wins over the file."""
        return os.environ.get(SIGNING_KEY_ENV, self.signing_key).encode()


def check_churn_config(c: ChurnConfig) -> None:
    from scoring.churn.registry import known_model
    from scoring.config import ConfigError

    if c.publish_every_examples < 1:
        raise ConfigError("churn.publish_every_examples", "must be at least 1")
    if c.publish_every_seconds <= 0:
        raise ConfigError("churn.publish_every_seconds", "must be greater than 0")
    if not c.signing_key and SIGNING_KEY_ENV not in os.environ:
        raise ConfigError("churn.signing_key", f"must not be empty (or set {SIGNING_KEY_ENV})")
    for key, name in (("churn.model", c.model), ("churn.shadow", c.shadow)):
        if name and not known_model(name):
            raise ConfigError(key, f"unknown model {name!r} (see `engage model list`)")
