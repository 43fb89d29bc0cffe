"""Errors every layer raises, in a leaf module that imports nothing of the project."""

from __future__ import annotations


class ConfigError(ValueError):
    """A rules-file problem, with the dotted path of the key at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key `{key}`: {problem}")
        self.key = key
        self.problem = problem
