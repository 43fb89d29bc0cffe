"""Command-line options that also read an environment variable (containers set env, not flags).

A flag wins over its variable, which wins over the default. A bad value from the environment
is a usage error that names the variable, like a bad flag. Each option records its variable
(`action.env`) so tests and docs can list them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def env_option(
    parser: Parser,
    *flags: str,
    env: str,
    default: str | None,
    type: Callable[[str], Any] = str,
    choices: Sequence[str] | None = None,
    help: str = "",
    **kwargs: Any,
) -> argparse.Action:
    """`parser.add_argument(*flags)` whose default is `$env`, else `default`."""
    from_env = os.environ.get(env)
    source = f"${env}" if from_env is not None else None

    def convert(text: str) -> Any:
        if choices is not None and text not in choices:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not one of {', '.join(choices)}"
                + (f" (from {source})" if source and text == from_env else "")
            )
        try:
            return type(text)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            if source and text == from_env:
                raise argparse.ArgumentTypeError(f"{exc} (from {source})") from None
            raise

    convert.__name__ = getattr(type, "__name__", "value")
    shown = f" {{{','.join(choices)}}}" if choices else ""
    action = parser.add_argument(
        *flags,
        default=from_env if from_env is not None else default,
        type=convert,
        metavar=kwargs.pop("metavar", shown.strip() or None),
        help=f"{help} (env {env}; default {default if default not in (None, '') else 'none'})",
        **kwargs,
    )
    action.env = env  # type: ignore[attr-defined]
    return action
