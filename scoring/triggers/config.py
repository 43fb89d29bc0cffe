"""The `[triggers]` section: settings shared by every rule, and one sub-section per
registered rule (`[triggers.<type>]`), each decoded by the rule's own config struct.

Which sections exist is the registry's to say: a plug-in rule named in `plugins` (or
installed as an `engage.triggers` entry point) gets its section the same way as a built-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from scoring.errors import ConfigError
from scoring.triggers.registry import (
    RegistryError,
    load_plugins,
    rule_for,
    rules,
    trigger_types,
)
from scoring.triggers.rule import RuleConfig, TriggerRule

if TYPE_CHECKING:
    from scoring.config import EngageConfig


class TriggersConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Trigger rules, caps and holdouts."""

    enabled: bool = True
    daily_cap: int = 3
    holdout_salt: str = "engage-holdout-v1"
    plugins: tuple[str, ...] = ()  # modules that register more rules
    rules: dict[str, RuleConfig] = msgspec.field(default_factory=dict)  # type -> its section

    def active(self) -> list[type[TriggerRule]]:
        """The rules this config runs: built-ins, entry points and its own plug-ins."""
        return rules(self.plugins)

    def types(self) -> tuple[str, ...]:
        """The trigger types this config can emit (each has a topic `triggers.<type>`)."""
        return trigger_types(self.plugins)

    def rule(self, trigger_type: str) -> RuleConfig:
        found = self.rules.get(trigger_type)
        if found is not None:
            return found
        default: RuleConfig = rule_for(trigger_type).Config()
        return default


def triggers_from_dict(
    data: dict[str, Any], path_of: Callable[[str], tuple[str, str]]
) -> TriggersConfig:
    """Decode `[triggers]`: plug-ins first (they add sections), then each rule's section."""
    data = dict(data)
    plugins = data.get("plugins", ())
    if not isinstance(plugins, list | tuple) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError("triggers.plugins", "must be a list of module names")
    try:
        load_plugins(plugins)
    except RegistryError as exc:
        raise ConfigError("triggers.plugins", str(exc)) from None
    sections: dict[str, RuleConfig] = {}
    for rule in rules(plugins):
        raw = data.pop(rule.trigger_type, {})
        try:
            sections[rule.trigger_type] = msgspec.convert(raw, rule.Config)
        except msgspec.ValidationError as exc:
            key, problem = path_of(str(exc))
            if problem.startswith("Object contains unknown field"):
                key, problem = problem.split("`")[1], "unknown key (check its spelling)"
            where = f"triggers.{rule.trigger_type}.{key}".rstrip(".").replace(".(root)", "")
            raise ConfigError(where, problem) from None
    unknown = sorted(set(data) - set(TriggersConfig.__struct_fields__))
    if unknown:
        raise ConfigError(
            f"triggers.{unknown[0]}",
            "unknown key: not a setting, nor a registered trigger type "
            f"({', '.join(r.trigger_type for r in rules(plugins))})",
        )
    try:
        common = msgspec.convert(data, TriggersConfig)
    except msgspec.ValidationError as exc:
        key, problem = path_of(str(exc))
        raise ConfigError(f"triggers.{key}", problem) from None
    return msgspec.structs.replace(common, rules=sections)


def check_triggers_config(engage: EngageConfig) -> None:
    c = engage.triggers
    if c.daily_cap < 0:
        raise ConfigError("triggers.daily_cap", "must not be negative")
    for rule in c.active():
        section = c.rule(rule.trigger_type)
        key = f"triggers.{rule.trigger_type}"
        if not 0.0 <= section.holdout_share <= 1.0:
            raise ConfigError(f"{key}.holdout_share", "must be between 0 and 1")
        if section.cooldown_days < 0:
            raise ConfigError(f"{key}.cooldown_days", "must not be negative")
        if section.expires_hours <= 0:
            raise ConfigError(f"{key}.expires_hours", "must be greater than 0")
        rule.check(section, engage)


def to_builtins(c: TriggersConfig) -> dict[str, Any]:
    """The section as the rules file writes it (rule sections beside the common keys)."""
    out: dict[str, Any] = msgspec.to_builtins(c)
    out.update(out.pop("rules"))
    return out
