"""Secrets from the environment or files, never from flags that show in `ps`.

Each secret NAME is read from `$NAME`, else from the file named by `$NAME_FILE` (a mounted
Kubernetes or compose secret; surrounding whitespace stripped), else from the rules file
where it has a key. The model signing key falls back to the public development key, which
`engage worker` refuses unless it runs the demo or is given `--insecure-dev-key`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scoring.churn.config import DEV_SIGNING_KEY
from scoring.config import EngageConfig

SIGNING_KEY_ENV = "ENGAGE_MODEL_SIGNING_KEY"


class SecretError(ValueError):
    """A secret that is set but unusable (an unreadable or empty file)."""


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """`$NAME`, else the contents of the file `$NAME_FILE`, else None."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise SecretError(f"{name}_FILE={path}: {exc.strerror or exc}") from None
    if not text:
        raise SecretError(f"{name}_FILE={path} is empty")
    return text


@dataclass(frozen=True)
class SigningKey:
    key: bytes
    source: str  # where it came from, for messages (never the key itself)

    @property
    def is_dev(self) -> bool:
        return self.key == DEV_SIGNING_KEY.encode()


def signing_key(config: EngageConfig, environ: Mapping[str, str] | None = None) -> SigningKey:
    """The model artifacts' HMAC key: environment, then file, then the rules file."""
    from_env = read_secret(SIGNING_KEY_ENV, environ)
    if from_env:
        return SigningKey(from_env.encode(), f"${SIGNING_KEY_ENV}(_FILE)")
    if config.churn.signing_key:
        return SigningKey(config.churn.signing_key.encode(), "churn.signing_key")
    return SigningKey(DEV_SIGNING_KEY.encode(), "the built-in development key")


def refuse_dev_key(key: SigningKey) -> str | None:
    """Why a production worker must not start with this key (None: it may)."""
    if not key.is_dev:
        return None
    return (
        f"refusing to start with {key.source}: it is public, so anyone who can write to the "
        f"models topic could run code in this worker. Set {SIGNING_KEY_ENV} or "
        f"{SIGNING_KEY_ENV}_FILE (or churn.signing_key), or pass --insecure-dev-key "
        "(ENGAGE_INSECURE_DEV_KEY=1) for a local trial."
    )
