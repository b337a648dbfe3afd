"""Shared fixtures: an isolated RECSYS_HOME per test, never the developer's own."""

from __future__ import annotations

import pytest

# Session fixture over the real CPU LLM servers (skips unless .ci/llm_servers.sh built them).
from tests.llm_servers import real_llm_server  # noqa: F401


@pytest.fixture
def recsys_home(tmp_path, monkeypatch):
    home = tmp_path / "recsys_home"
    monkeypatch.setenv("RECSYS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for var in (
        "RECSYS_DATA_DIR",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "RECSYS_LABELER",
        "RECSYS_ALERT_WEBHOOK",
    ):
        monkeypatch.delenv(var, raising=False)
    # mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into os.environ; setting it here makes
    # monkeypatch remove it again after the test, so no test inherits another's store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    (home / "dagster").mkdir(parents=True)
    return home
