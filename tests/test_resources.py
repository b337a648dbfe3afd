"""Every external system is a typed resource built from the one settings object; single assets run
with substituted resources (no environment patching), and secrets stay out of resource config."""

from __future__ import annotations

import json

import dagster as dg
import duckdb

from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.orchestration.ingest import restaurants
from recsys_assets.orchestration.labeling import restaurant_industry
from recsys_assets.orchestration.resources import (
    AlertsResource,
    LedgerResource,
    LLMResource,
    MLflowResource,
    RecsysConfig,
    WarehouseResource,
)
from recsys_assets.sample_data import generate_sample
from tests.fake_openai_server import FakeOpenAI


def test_labeling_asset_runs_on_a_substituted_llm_resource(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    generate_sample(data, n_restaurants=30, seed=5, fmt="csv")
    key = "sk-test-" + "r" * 32
    with FakeOpenAI(latency_ms=2) as server:
        result = dg.materialize(
            [restaurants, restaurant_industry],
            instance=dg.DagsterInstance.ephemeral(),
            resources={
                "recsys": RecsysConfig(home=str(home), data_dir=str(data), labeler="llm"),
                "warehouse": WarehouseResource(database=str(home / "warehouse.duckdb")),
                "llm": LLMResource(
                    model="gpt-4o-mini",
                    base_url=server.base_url,
                    api_key=key,
                    max_concurrency=2,
                    items_per_call=5,
                ),
                "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
            },
        )
        assert result.success
        calls = server.requests
    [mat] = result.asset_materializations_for_node("restaurant_industry")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["labeler"] == "llm" and meta["llm_calls"] == calls > 0
    assert key not in repr(meta)  # every value, the column schema included
    assert (tmp_path / "ledger.sqlite").exists()  # the substituted ledger, not RECSYS_HOME's
    assert not (home / "labeling_ledger.sqlite").exists()
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        sources = {
            r[0] for r in con.execute("SELECT DISTINCT source FROM restaurant_industry").fetchall()
        }
    finally:
        con.close()
    assert sources == {"llm"}


def test_default_resources_come_from_settings_and_hold_secrets_as_env_vars(
    recsys_home, monkeypatch
):
    key, hook = "sk-test-" + "k" * 32, "https://hooks.example/T0/hook-token"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("RECSYS_ALERT_WEBHOOK", hook)
    monkeypatch.setenv("RECSYS_LLM_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("RECSYS_NDCG_FLOOR", "0.25")
    monkeypatch.setenv("RECSYS_LEDGER_LEASE_SECONDS", "90")
    settings = load_settings()
    res = build_defs(settings).resources
    assert isinstance(res["llm"], LLMResource) and res["llm"].max_concurrency == 3
    assert isinstance(res["ledger"], LedgerResource) and res["ledger"].lease_seconds == 90
    assert isinstance(res["mlflow"], MLflowResource) and res["mlflow"].ndcg_floor == 0.25
    assert res["mlflow"].tracking_uri == settings.mlflow_tracking_uri
    assert isinstance(res["alerts"], AlertsResource) and res["alerts"].store_dir == str(
        settings.home
    )
    # The config the UI shows names the variables; the values are resolved only inside the run.
    assert res["llm"].api_key == "OPENAI_API_KEY" and isinstance(res["llm"].api_key, dg.EnvVar)
    assert res["alerts"].webhook_url == "RECSYS_ALERT_WEBHOOK"
    shown = json.dumps({k: r.model_dump() for k, r in res.items()}, default=str)
    assert key not in shown and "hook-token" not in shown


def test_no_key_means_no_env_var_to_resolve(recsys_home):
    res = build_defs(load_settings()).resources
    assert res["llm"].api_key is None and res["alerts"].webhook_url is None
    assert res["ledger"].url is None  # the SQLite file under RECSYS_HOME
