"""A warehouse on the real generator's sample: the real ingest and the offline labeler's industries
(what the ranking tests build their dataset on)."""

from __future__ import annotations

from pathlib import Path

import duckdb


def offline_labeled_warehouse(tmp: Path, seed: int, n_restaurants: int):
    """(connection to tmp/w.duckdb, the generated files) with restaurants, products, orders and an
    offline-labeled restaurant_industry."""
    from recsys_assets.labeling.offline import OfflineLabeler
    from recsys_assets.sample_data import generate_sample
    from recsys_assets.warehouse.ingest import ingest_orders, ingest_products, ingest_restaurants

    files = generate_sample(tmp / "sample", scale="small", seed=seed, n_restaurants=n_restaurants)
    con = duckdb.connect(str(tmp / "w.duckdb"))
    ingest_restaurants(con, files.restaurants)
    ingest_products(con, files.products)
    ingest_orders(con, files.orders)
    rows = con.execute("SELECT restaurant_id, name, menu, description FROM restaurants").fetchall()
    preds = OfflineLabeler().predict_many((n, m, d) for _, n, m, d in rows)
    con.execute(
        "CREATE TABLE restaurant_industry (restaurant_id VARCHAR, industry VARCHAR, "
        "confidence DOUBLE, source VARCHAR, labeled_at TIMESTAMP)"
    )
    con.executemany(
        "INSERT INTO restaurant_industry VALUES (?, ?, ?, 'offline', now())",
        [(r[0], p.industry, float(p.confidence)) for r, p in zip(rows, preds, strict=True)],
    )
    return con, files
