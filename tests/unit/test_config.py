"""The rules file: defaults load, and every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.config import ConfigError, config_from_dict, load_config


def test_defaults_load_and_carry_required_keys() -> None:
    c = load_config()
    assert c.churn.horizon_days == 14.0
    assert c.scoring.half_life_days == 14.0
    assert [lv.name for lv in c.tiers.levels] == ["bronze", "silver", "gold", "vip"]
    assert len(c.event_types) == 14


def test_user_file_merges_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[scoring]\nhalf_life_days = 3.5\n[churn]\nhorizon_days = 7\n")
    c = load_config(path)
    assert c.scoring.half_life_days == 3.5
    assert c.churn.horizon_days == 7.0
    assert c.scoring.lateness_seconds == 3600  # untouched default


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"scoring": {"half_life_days": "long"}}, "scoring.half_life_days", "Expected `float`"),
        ({"scoring": {"half_life_dayz": 3}}, "scoring.half_life_dayz", "unknown key"),
        ({"scoring": {"half_life_days": -1}}, "scoring.half_life_days", "greater than 0"),
        ({"churn": {"horizon_days": 0}}, "churn.horizon_days", "greater than 0"),
        ({"events": {"min_timestamp": "1997-01-01"}}, "events.min_timestamp",
         "Invalid RFC3339"),
        ({"events": {"min_timestamp": "1960-01-01T00:00:00Z"}}, "events.min_timestamp",
         "before 1970"),
        ({"churn": {"model": "nope"}}, "churn.model", "unknown model"),
        ({"event_types": {"like": {"weights": {"fun": 1}}}}, "event_types.like.weights.fun",
         "unknown dimension"),
        ({"tiers": {"levels": [{"name": "a", "min_score": 0}, {"name": "b", "min_score": 0}]}},
         "tiers.levels[1].min_score", "increasing"),
        ({"triggers": {"vip_promotion": {"tier": "platinum"}}}, "triggers.vip_promotion.tier",
         "not a tier"),
        ({"triggers": {"win_back": {"holdout_share": 2}}}, "triggers.win_back.holdout_share",
         "between 0 and 1"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert info.value.key == key
    assert problem in info.value.problem
    assert f"`{key}`" in str(info.value)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[scoring\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_an_unknown_trigger_section_names_the_key_and_the_known_types() -> None:
    from scoring.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError) as info:
        config_from_dict({"triggers": {"teleport": {"enabled": True}}})
    assert info.value.key == "triggers.teleport"
    assert "registered trigger type" in info.value.problem and "win_back" in info.value.problem
    with pytest.raises(ConfigError) as info:
        config_from_dict({"triggers": {"streak": {"lengths": [1]}}})
    assert info.value.key == "triggers.streak.lengths[0]"
    with pytest.raises(ConfigError) as info:
        config_from_dict({"triggers": {"win_back": {"min_silence": 3}}})
    assert info.value.key == "triggers.win_back.min_silence"
    with pytest.raises(ConfigError) as info:
        config_from_dict({"triggers": {"plugins": ["no.such.module"]}})
    assert info.value.key == "triggers.plugins" and "cannot be imported" in info.value.problem
