"""Label tables: per-shard labels for parallel backfills, and their assembly into one table.

A shard is a stable hash bucket of restaurant_id (md5, so it does not move between DuckDB
versions). Each shard row remembers the hash of the text it was labeled from, so assembly reuses
a shard's label only while the restaurant's name, menu and description are unchanged.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from recsys_assets.warehouse.tables import transaction

N_SHARDS = 8
SHARDS_TABLE = "restaurant_industry_shards"
LABEL_COLUMNS = ["restaurant_id", "industry", "confidence", "source", "labeled_at", "flagged"]

SHARD_SQL = f"CAST(md5_number(restaurant_id) % {N_SHARDS} AS INTEGER)"
INPUT_HASH_SQL = "md5(coalesce(name, '') || chr(31) || coalesce(menu, '') || chr(31) || coalesce(description, ''))"

_SHARDS_DDL = f"""
CREATE TABLE IF NOT EXISTS {SHARDS_TABLE} (
    shard INTEGER, restaurant_id VARCHAR, input_hash VARCHAR, industry VARCHAR,
    confidence DOUBLE, source VARCHAR, labeled_at TIMESTAMP, flagged BOOLEAN
)
"""


def restaurants_to_label(con: duckdb.DuckDBPyConnection, shard: int | None = None) -> pd.DataFrame:
    """restaurant_id, name, menu, description (+ shard, input_hash) of one shard, or of all."""
    where = f"WHERE {SHARD_SQL} = $shard" if shard is not None else ""
    return con.execute(
        f"""
        SELECT restaurant_id, name, menu, description, {SHARD_SQL} AS shard, {INPUT_HASH_SQL} AS input_hash
        FROM restaurants {where} ORDER BY restaurant_id
        """,
        {"shard": shard} if shard is not None else {},
    ).df()


def _utc_naive(labels: pd.DataFrame) -> pd.DataFrame:
    """labeled_at as naive UTC, whether it came from the labeler (aware) or a table (naive)."""
    out = labels[LABEL_COLUMNS].copy()
    stamps = pd.to_datetime(out["labeled_at"], utc=True)
    out["labeled_at"] = stamps.dt.tz_localize(None)
    return out


def write_shard(
    con: duckdb.DuckDBPyConnection, shard: int, inputs: pd.DataFrame, labels: pd.DataFrame
) -> int:
    """Replace one shard's labels (idempotent; all or nothing)."""
    frame = _utc_naive(labels).merge(inputs[["restaurant_id", "input_hash"]], on="restaurant_id")
    con.execute(_SHARDS_DDL)
    con.register("shard_df", frame)
    try:
        with transaction(con):
            con.execute(f"DELETE FROM {SHARDS_TABLE} WHERE shard = ?", [shard])
            con.execute(
                f"""
                INSERT INTO {SHARDS_TABLE}
                SELECT ?, restaurant_id, input_hash, industry, CAST(confidence AS DOUBLE), source,
                       CAST(labeled_at AS TIMESTAMP), CAST(flagged AS BOOLEAN)
                FROM shard_df
                """,
                [shard],
            )
    finally:
        con.unregister("shard_df")
    return len(frame)


def current_shard_labels(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Shard labels still valid for today's restaurants (same shard, same input text)."""
    con.execute(_SHARDS_DDL)
    return con.execute(
        f"""
        SELECT s.restaurant_id, s.industry, s.confidence, s.source, s.labeled_at, s.flagged
        FROM {SHARDS_TABLE} s
        JOIN (SELECT restaurant_id, {SHARD_SQL} AS shard, {INPUT_HASH_SQL} AS input_hash FROM restaurants) r
          ON r.restaurant_id = s.restaurant_id AND r.shard = s.shard AND r.input_hash = s.input_hash
        ORDER BY s.restaurant_id
        """
    ).df()


def write_restaurant_industry(con: duckdb.DuckDBPyConnection, labels: pd.DataFrame) -> None:
    """Replace `restaurant_industry` with one row per restaurant (all or nothing)."""
    con.register("labels_df", _utc_naive(labels))
    try:
        with transaction(con):
            con.execute(
                "CREATE OR REPLACE TABLE restaurant_industry AS "
                "SELECT restaurant_id, industry, CAST(confidence AS DOUBLE) AS confidence, source, "
                "CAST(labeled_at AS TIMESTAMP) AS labeled_at, CAST(flagged AS BOOLEAN) AS flagged "
                "FROM labels_df ORDER BY restaurant_id"
            )
    finally:
        con.unregister("labels_df")
