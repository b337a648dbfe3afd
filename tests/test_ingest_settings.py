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
