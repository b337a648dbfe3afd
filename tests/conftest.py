"""Shared fixtures: an isolated RECSYS_HOME per test, never the developer's own."""

from __future__ import annotations

import pytest


@pytest.fixture()
def recsys_home(tmp_path, monkeypatch):
    home = tmp_path / "recsys_home"
    monkeypatch.setenv("RECSYS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for var in ("RECSYS_DATA_DIR", "OPENAI_API_KEY", "OPENAI_BASE_URL", "MLFLOW_TRACKING_URI", "RECSYS_LABELER"):
        monkeypatch.delenv(var, raising=False)
    (home / "dagster").mkdir(parents=True)
    return home
