"""The variables' table: one record per Config field, its defaults, bounds and choices."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from service.config import Config, ConfigError, read
from service.config_table import SETTINGS, Setting
from tests.support.deploy_files import config_variables

NOT_VARIABLES = {"max_body_bytes"}  # an input limit (service/limits.py), not from the environment
FIELDS = {f.name: f for f in dataclasses.fields(Config)}
BOUNDED = [s for s in SETTINGS if s.kind in ("integer", "number")]


def test_each_field_is_one_variable() -> None:
    """Every Config field but the input limit has exactly one variable, and names are unique."""
    assert sorted(s.field for s in SETTINGS) == sorted(set(FIELDS) - NOT_VARIABLES)
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


def test_variables_read_are_the_table() -> None:
    """The names Config.from_env looks up, noted as it reads, are exactly the table's."""
    assert config_variables() == {s.name for s in SETTINGS}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_field_default_is_the_tables(setting: Setting[Any]) -> None:
    """A field's default is its variable's; a required variable's field has none."""
    field = FIELDS[setting.field]
    default = field.default
    if setting.required:
        assert default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    else:
        assert default == setting.default


def test_derived_base_url_default_agrees() -> None:
    """The base URL's default is what the host and port defaults make."""
    config = Config.from_env({"REDIS_URL": "redis://h:1/0", "TOKENBROKER_SECRET": "A" * 43 + "="})
    assert config.base_url == Config.base_url == f"http://{Config.host}:{Config.port}"


@pytest.mark.parametrize("setting", BOUNDED, ids=lambda s: s.name)
def test_bounds_are_enforced(setting: Setting[Any]) -> None:
    """Both bounds are taken; a value past either is refused, naming the variable and bounds."""
    assert setting.low is not None and setting.high is not None
    step = 1 if setting.kind == "integer" else setting.high / 1000
    for value in (setting.low, setting.high):
        assert read(setting, {setting.name: str(value)}) == value
    for value in (setting.low - step, setting.high + step):
        raw = str(int(value)) if setting.kind == "integer" else str(value)
        with pytest.raises(ConfigError, match=f"{setting.name} must be between") as caught:
            read(setting, {setting.name: raw})
        assert f"{setting.low} and {setting.high}" in str(caught.value)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.choices], ids=lambda s: s.name)
def test_choices_are_enforced(setting: Setting[Any]) -> None:
    """Each choice is taken; anything else is refused naming the variable."""
    for choice in setting.choices:
        assert read(setting, {setting.name: choice}) == choice
    with pytest.raises(ConfigError, match=setting.name):
        read(setting, {setting.name: "none-of-these"})


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.required], ids=lambda s: s.name)
def test_required_variables_name_themselves(setting: Setting[Any]) -> None:
    """An unset required variable is refused with its name and a hint."""
    with pytest.raises(ConfigError, match=f"{setting.name} is not set \\(.+\\)"):
        read(setting, {})
