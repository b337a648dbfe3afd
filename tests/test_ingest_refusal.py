"""A header-only orders file on a built home: refused before anything is replaced, downstream not
run, the message gives the counts and the override; the override does load it."""

from __future__ import annotations

import dagster as dg
import duckdb

from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.sample_data import generate_sample

# restaurant_industry runs too (it does not depend on orders) and stamps labeled_at: not compared.
TABLES = ("restaurants", "products", "orders", "industry_product_stats", "industry_top_products")
SELECTION = [dg.AssetKey(t) for t in (*TABLES, "restaurant_industry")]


def snapshot(settings) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    finally:
        con.close()


def run(settings):
    job = build_defs(settings).resolve_job_def("rebuild_job")
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=SELECTION, raise_on_error=False
    )


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_header_only_orders_are_refused_and_the_override_loads_them(
    recsys_home, tmp_path, monkeypatch
):
    data = tmp_path / "data"
    generate_sample(data, n_restaurants=300, seed=7, fmt="csv")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(data))
    monkeypatch.delenv("RECSYS_ALLOW_SHRINK", raising=False)
    settings = load_settings()
    assert run(settings).success
    before = snapshot(settings)
    n_orders = len(before["orders"])
    assert n_orders > 1000 and before["industry_product_stats"] and before["industry_top_products"]

    orders = data / "orders.csv"
    orders.write_text(orders.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    refused = run(settings)
    assert not refused.success
    message = refused.failure_data_for_node("orders").error.message
    assert f"refused: no row to load would replace the {n_orders:,} rows of orders" in message
    assert "0 rows read, 0 rejected" in message and "RECSYS_ALLOW_SHRINK=1" in message
    # Nothing downstream of orders ran; the tables are exactly as before.
    assert "orders" not in materialized(refused)
    assert not materialized(refused) & {"industry_product_stats", "industry_top_products"}
    started = {e.step_key for e in refused.all_events if e.event_type_value == "STEP_START"}
    assert "orders" in started
    assert not started & {"industry_product_stats", "industry_top_products"}
    assert snapshot(settings) == before

    monkeypatch.setenv("RECSYS_ALLOW_SHRINK", "1")
    forced = run(settings)
    assert forced.success
    assert {"orders", "industry_product_stats", "industry_top_products"} <= materialized(forced)
    after = snapshot(settings)
    assert after["orders"] == [] and after["restaurants"] == before["restaurants"]
    assert after["industry_product_stats"] == []
