"""Ingest bounds are settings: read from the environment once, in config.Settings, and validated."""

from __future__ import annotations

import pytest

from recsys_assets.config import ConfigError, load_settings


def test_max_quantity_default_and_env(recsys_home, monkeypatch):
    assert load_settings().max_quantity == 1_000_000
    monkeypatch.setenv("RECSYS_MAX_QUANTITY", "250")
    assert load_settings().max_quantity == 250


@pytest.mark.parametrize("value", ["0", "-1", "inf", "lots"])
def test_bad_max_quantity_names_the_variable(recsys_home, monkeypatch, value):
    monkeypatch.setenv("RECSYS_MAX_QUANTITY", value)
    with pytest.raises(ConfigError, match="RECSYS_MAX_QUANTITY"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("RECSYS_MAX_SHRINK", "1.5"), ("RECSYS_MAX_SHRINK", "-0.1"), ("RECSYS_ALLOW_SHRINK", "maybe")],
)
def test_bad_shrink_settings_name_the_variable(recsys_home, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_run_config_can_allow_a_shrink(recsys_home, monkeypatch):
    from recsys_assets.orchestration.resources import RecsysConfig

    monkeypatch.delenv("RECSYS_ALLOW_SHRINK", raising=False)
    assert RecsysConfig().settings().allow_shrink is False
    assert RecsysConfig(allow_shrink=True).settings().allow_shrink is True


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (0.5, False)),
        ({"RECSYS_MAX_SHRINK": "0.2"}, (0.2, False)),
        ({"RECSYS_ALLOW_SHRINK": "1"}, (0.5, True)),
        ({"RECSYS_ALLOW_SHRINK": "false"}, (0.5, False)),
    ],
)
def test_shrink_settings(recsys_home, monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert (s.max_shrink, s.allow_shrink) == expected
