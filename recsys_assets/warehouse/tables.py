"""Industry-to-product tables, all in DuckDB SQL.

`as_of` lets the ranking step rebuild the same tables from orders strictly before a cutoff, so the
model and the baselines never see the future (one definition serves both uses).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
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
    """The SELECT behind `industry_product_stats`, as of `$as_of` (`industry_product_stats_params`).

    The one definition of the statistics: the ranking snapshots embed it as of each snapshot date.
    """
    return """
    WITH labeled AS (
        SELECT r.restaurant_id, ri.industry
        FROM restaurants r
        JOIN restaurant_industry ri USING (restaurant_id)
        WHERE r.signup_date < CAST($as_of AS TIMESTAMP)
    ),
    past_orders AS (
        SELECT o.restaurant_id, o.product_id, o.order_id, o.quantity, o.ordered_at
        FROM orders o
        WHERE o.ordered_at < CAST($as_of AS TIMESTAMP)
    ),
    industry_size AS (
        SELECT industry, count(*) AS industry_restaurants FROM labeled GROUP BY industry
    ),
    n_total AS (SELECT count(*) AS n FROM labeled),
    global_buyers AS (
        SELECT po.product_id, count(DISTINCT po.restaurant_id) AS global_buyers
        FROM past_orders po JOIN labeled l USING (restaurant_id)
        GROUP BY po.product_id
    ),
    per_pair AS (
        SELECT
            l.industry,
            po.product_id,
            count(DISTINCT po.restaurant_id) AS buyers,
            count(DISTINCT po.order_id) AS orders,
            sum(po.quantity) AS quantity,
            sum(
                po.quantity * exp(
                    -ln(2) * date_diff('second', po.ordered_at, CAST($as_of AS TIMESTAMP))
                    / 86400.0 / $half_life
                )
            ) AS recency_quantity
        FROM past_orders po JOIN labeled l USING (restaurant_id)
        GROUP BY l.industry, po.product_id
    )
    SELECT
        p.industry,
        p.product_id,
        p.buyers,
        s.industry_restaurants,
        p.buyers / s.industry_restaurants AS penetration,
        p.orders,
        p.quantity,
        g.global_buyers / n_total.n AS global_penetration,
        (p.buyers / s.industry_restaurants) / (g.global_buyers / n_total.n) AS lift,
        p.recency_quantity / s.industry_restaurants AS recency_score,
        (p.buyers + $smoothing * g.global_buyers / n_total.n)
            / (s.industry_restaurants + $smoothing) AS smoothed_penetration
    FROM per_pair p
    JOIN industry_size s USING (industry)
    JOIN global_buyers g USING (product_id)
    CROSS JOIN n_total
    """


def industry_product_stats_params(as_of: datetime) -> dict:
    """Named parameters of `industry_product_stats_select`."""
    return {"as_of": as_of, "smoothing": SMOOTHING_RESTAURANTS, "half_life": RECENCY_HALF_LIFE_DAYS}


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
    sql = f"CREATE OR REPLACE TABLE {table} AS {select} ORDER BY industry, product_id"
    with transaction(con):
        con.execute(sql, industry_product_stats_params(as_of))
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
