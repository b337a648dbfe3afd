"""The whole asset graph materialized into tmp_path with dg.materialize, plus a Definitions load test."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest
from mlflow import MlflowClient

from recsys_assets import taxonomy
from recsys_assets.alerts import AlertStore
from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.ranking.evaluate import SCORING_CALLS
from recsys_assets.sample_data import generate_sample


def test_definitions_load():
    import recsys_assets
    from recsys_assets.definitions import defs

    assert recsys_assets.defs is defs
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {
        "restaurants",
        "products",
        "orders",
        "restaurant_industry",
        "industry_product_stats",
        "industry_top_products",
        "ranking_dataset",
        "ranker_model",
        "ranker_evaluation",
        "champion_model",
        "recommendations",
    } <= keys
    assert defs.resolve_job_def("rebuild_job") is not None
    dg.Definitions.validate_loadable(defs)


@pytest.fixture
def small_data(tmp_path):
    data = tmp_path / "data"
    generate_sample(data, n_restaurants=300, seed=7, fmt="csv")
    return data


def test_materialize_whole_graph(recsys_home, small_data, monkeypatch):
    monkeypatch.setenv("RECSYS_DATA_DIR", str(small_data))
    settings = load_settings()
    defs = build_defs(settings)
    job = defs.resolve_job_def("rebuild_job")
    SCORING_CALLS.clear()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    # Evaluate once: the challenger is scored once per rebuild (no champion to re-score yet) and the
    # test split loaded once, although ranker_evaluation and champion_model both use the numbers.
    assert SCORING_CALLS == {"booster_scored": 1, "split_loaded": 1}
    checks = list(result.get_asset_check_evaluations())
    failed = [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed]
    assert {c.check_name for c in checks} >= {
        "unique_key",
        "labels_within_taxonomy",
        "promotion_gate",
    }
    assert checks and not failed

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        n_rest = con.execute("SELECT count(*) FROM restaurants").fetchall()[0][0]
        n_lab = con.execute("SELECT count(*) FROM restaurant_industry").fetchall()[0][0]
        assert n_rest == n_lab > 0
        labels = {
            r[0]
            for r in con.execute("SELECT DISTINCT industry FROM restaurant_industry").fetchall()
        }
        assert labels <= set(taxonomy.INDUSTRY_CODES) and len(labels) >= 10
        top = con.execute(
            "SELECT industry, max(rank) FROM industry_top_products GROUP BY 1"
        ).fetchall()
        assert top and all(1 <= r[1] <= 50 for r in top)
        snapshot = {
            t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").df()
            for t in ("restaurants", "orders", "industry_product_stats", "industry_top_products")
        }
    finally:
        con.close()

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias("industry-product-ranker", "champion")
    assert champion.tags["promotion_decision"] == "promoted"
    recs = pd.read_parquet(settings.exports_dir / "recommendations.parquet")
    assert set(recs["model_version"]) == {str(champion.version)}
    assert (
        recs.groupby("restaurant_id").size().max() == 10
        and recs["restaurant_id"].nunique() == n_rest
    )

    # Idempotent: a second rebuild gives the same tables, no duplicates, and registers no new
    # version: same code and data, so ranker_model reuses the version and nothing is scored again.
    versions_before = {v.version for v in client.search_model_versions()}
    challenger_before = client.get_model_version_by_alias("industry-product-ranker", "challenger")
    alerts_before = AlertStore(settings.home / "alerts.sqlite").recent()
    SCORING_CALLS.clear()
    second = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert second.success
    assert not SCORING_CALLS
    assert {v.version for v in client.search_model_versions()} == versions_before
    gate = [c for c in second.get_asset_check_evaluations() if c.check_name == "promotion_gate"]
    assert len(gate) == 1 and gate[0].passed
    assert (
        client.get_model_version_by_alias("industry-product-ranker", "champion").version
        == champion.version
    )
    challenger = client.get_model_version_by_alias("industry-product-ranker", "challenger")
    assert challenger.version == challenger_before.version
    model_meta = second.asset_materializations_for_node("ranker_model")[0].metadata
    assert model_meta["reused_version"].value is True
    gate_meta = second.asset_materializations_for_node("champion_model")[0].metadata
    assert gate_meta["champion_version"].value == str(champion.version)
    assert AlertStore(settings.home / "alerts.sqlite").recent() == alerts_before  # nothing new
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        for table, before in snapshot.items():
            # Same rows; floats equal up to the order of DuckDB's parallel sums.
            pd.testing.assert_frame_equal(
                con.execute(f"SELECT * FROM {table} ORDER BY ALL").df(), before
            )
    finally:
        con.close()


def test_generated_sample_is_the_default_source(recsys_home):
    """With no RECSYS_DATA_DIR the ingest assets generate (once) and load the sample."""
    settings = load_settings(sample_scale="small")
    defs = build_defs(settings)
    result = defs.resolve_job_def("rebuild_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey("restaurants"), dg.AssetKey("products")],
    )
    assert result.success
    assert (settings.sample_dir / "ground_truth").is_dir()
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM products").fetchall()[0][0] >= 300
    finally:
        con.close()
