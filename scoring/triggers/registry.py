"""The registry of trigger rules: every list of types derives from it.

Built-in rules live one per file in this package and register on import; plug-ins register
from their own modules, named in the rules file (`triggers.plugins = ["pkg.module"]`) or as
entry points in the `engage.triggers` group. Topic names, the config sections, the schemas
checked and the docs table all come from here, never from a second list.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from scoring.triggers.rule import TriggerRule

ENTRY_POINT_GROUP = "engage.triggers"
BUILTIN_MODULES = (
    "reengagement_nudge", "vip_promotion", "tier_change", "milestone", "streak",
    "onboarding_stalled", "ambassador_candidate", "win_back", "referral_ask",
    "referral_converted", "referral_flagged",
)

_RULES: dict[str, type[TriggerRule]] = {}
_ALWAYS_ON: set[str] = set()  # modules of built-ins and entry points: active in every config
_loaded_builtins = False


class RegistryError(ValueError):
    """Two rules claim one type or one code, or a plug-in cannot be imported."""


def register(rule: type[TriggerRule]) -> type[TriggerRule]:
    """Class decorator: make a rule known (idempotent for the same class)."""
    existing = _RULES.get(rule.trigger_type)
    if existing is not None and existing is not rule:
        if existing.__qualname__ == rule.__qualname__ and existing.__module__ == rule.__module__:
            _RULES[rule.trigger_type] = rule  # the same module imported again (tests, reloads)
            return rule
        raise RegistryError(f"trigger type {rule.trigger_type!r} is registered twice")
    for other in _RULES.values():
        if other.code == rule.code and other.trigger_type != rule.trigger_type:
            raise RegistryError(
                f"trigger code {rule.code} of {rule.trigger_type!r} is taken by "
                f"{other.trigger_type!r}"
            )
    if not rule.trigger_type.replace("_", "").isalnum() or not rule.trigger_type.islower():
        raise RegistryError(f"trigger type {rule.trigger_type!r}: use lower_snake_case")
    _RULES[rule.trigger_type] = rule
    return rule


def _builtins() -> None:
    global _loaded_builtins
    if not _loaded_builtins:
        _loaded_builtins = True
        for name in BUILTIN_MODULES:
            _ALWAYS_ON.add(importlib.import_module(f"scoring.triggers.{name}").__name__)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _ALWAYS_ON.add(ep.load().__module__)


def load_plugins(modules: Iterable[str]) -> None:
    """Import plug-in modules (each registers its rules on import)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise RegistryError(f"trigger plug-in {module!r} cannot be imported: {exc}") from None


def _always_on(rule: type[TriggerRule]) -> bool:
    return rule.__module__ in _ALWAYS_ON


def rules(plugins: Iterable[str] | None = None) -> list[type[TriggerRule]]:
    """Registered rules in evaluation order (priority, then code): the built-ins and installed
    entry points, plus those of the plug-in modules named (all registered ones if None)."""
    _builtins()
    named = None if plugins is None else set(plugins)
    chosen = [r for r in _RULES.values()
              if named is None or _always_on(r) or r.__module__ in named]
    return sorted(chosen, key=lambda r: (r.priority, r.code))


def rule_for(trigger_type: str) -> type[TriggerRule]:
    _builtins()
    return _RULES[trigger_type]


def trigger_types(plugins: Iterable[str] | None = ()) -> tuple[str, ...]:
    """The types of `rules(plugins)` by code (default: built-ins and entry points): topics
    `triggers.<type>` and the docs follow it."""
    return tuple(r.trigger_type for r in sorted(rules(plugins), key=lambda r: r.code))
