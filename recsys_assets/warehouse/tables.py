"""Industry-to-product tables, all in DuckDB SQL.

`as_of` lets the ranking step rebuild the same tables from orders strictly before a cutoff, so the
model and the baselines never see the future (one definition serves both uses).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any

import duckdb

TOP_K_PER_INDUSTRY = 50
# Half-life, in days, of the recency weight: an order 90 days old counts half as much as one today.
RECENCY_HALF_LIFE_DAYS = 90.0
# Pseudo-count that shrinks a small industry's penetration toward the global penetration, so an
# industry with three restaurants cannot put a product one of them bought once at rank 1.
SMOOTHING_RESTAURANTS = 5.0

_FAR_FUTURE = datetime(9999, 12, 31)


INDUSTRY_PRODUCT_STATS = "industry_product_stats"  # key: (industry, product_id)
INDUSTRY_TOP_PRODUCTS = "industry_top_products"  # key: (industry, rank)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    """The single value of a query that always returns one row (an aggregate, a setting)."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise duckdb.InvalidInputException(f"expected one row from: {sql}")
    return row[0]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: a failure leaves the previous tables as they were."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def industry_product_stats_select() -> str:
    """The SELECT behind `industry_product_stats` (industry_product_stats.sql), as of every
    timestamp of `$as_of` (`industry_product_stats_params`), with an `as_of` column.

    The one definition of the statistics: the warehouse table is it as of now, the ranking
    snapshots (rk_snap_ind_prod) are it as of every snapshot date, computed in one pass.
    """
    return files(__package__).joinpath("industry_product_stats.sql").read_text(encoding="utf-8")


def industry_product_stats_params(as_of: Sequence[datetime]) -> dict:
    """Named parameters of `industry_product_stats_select`: `as_of` sorted, without repeats."""
    stamps = sorted(set(as_of))
    if not stamps:
        raise ValueError("industry_product_stats needs at least one as_of timestamp")
    return {
        "as_of": stamps,
        "smoothing": SMOOTHING_RESTAURANTS,
        "half_life": RECENCY_HALF_LIFE_DAYS,
    }


def build_industry_product_stats(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime | None = None,
    table: str = INDUSTRY_PRODUCT_STATS,
) -> int:
    """Per industry x product: buyers, penetration, orders, quantity, lift, recency score.

    Reads `restaurants`, `orders`, `restaurant_industry`; only restaurants signed up and orders
    placed before `as_of` count (everything, when None). Returns the row count.
    """
    _check_identifier(table)
    if as_of is None:
        # Everything counts; recency is measured from just after the newest order.
        newest = con.execute("SELECT max(ordered_at) FROM orders").fetchall()[0][0]
        as_of = newest + timedelta(seconds=1) if newest else _FAR_FUTURE
    select = industry_product_stats_select()
    sql = (
        f"CREATE OR REPLACE TABLE {table} AS SELECT * EXCLUDE (as_of) FROM ({select}) "
        "ORDER BY industry, product_id"
    )
    with transaction(con):
        con.execute(sql, industry_product_stats_params([as_of]))
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def build_industry_top_products(
    con: duckdb.DuckDBPyConnection,
    k: int = TOP_K_PER_INDUSTRY,
    stats_table: str = INDUSTRY_PRODUCT_STATS,
    table: str = INDUSTRY_TOP_PRODUCTS,
) -> int:
    """The cold-start list: top `k` products per industry by smoothed penetration.

    Smoothed penetration (share of the industry's restaurants that bought the product, shrunk
    toward the global share) answers "what will a new restaurant of this industry need"; ties
    break on recency, then quantity, then product id so the ranking is deterministic.
    """
    _check_identifier(stats_table)
    _check_identifier(table)
    sql = f"""
    CREATE OR REPLACE TABLE {table} AS
    SELECT industry, rank, product_id, score FROM (
        SELECT
            industry,
            product_id,
            smoothed_penetration AS score,
            row_number() OVER (
                PARTITION BY industry
                ORDER BY smoothed_penetration DESC, recency_score DESC, quantity DESC, product_id
            ) AS rank
        FROM {stats_table}
    )
    WHERE rank <= $k
    ORDER BY industry, rank
    """
    with transaction(con):
        con.execute(sql, {"k": k})
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _check_identifier(name: str) -> None:
    # Table names cannot be SQL parameters; accept only plain identifiers we generate ourselves.
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain table name: {name!r}")
