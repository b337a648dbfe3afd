"""industry_product_stats / industry_top_products on tiny hand-made data with hand-computed answers."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from recsys_assets.warehouse import tables


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE restaurants(restaurant_id VARCHAR, signup_date DATE)")
    con.execute(
        "INSERT INTO restaurants VALUES ('a','2026-01-01'),('b','2026-01-01'),"
        "('c','2026-01-01'),('d','2026-06-01')"
    )
    con.execute("CREATE TABLE restaurant_industry(restaurant_id VARCHAR, industry VARCHAR)")
    con.execute(
        "INSERT INTO restaurant_industry VALUES ('a','chicken'),('b','chicken'),"
        "('c','cafe_dessert'),('d','chicken')"
    )
    con.execute(
        "CREATE TABLE orders(order_id VARCHAR, restaurant_id VARCHAR, product_id VARCHAR, "
        "quantity DOUBLE, ordered_at TIMESTAMP)"
    )
    con.execute(
        "INSERT INTO orders VALUES "
        "('o1','a','P1',2,'2026-02-01'),('o1','a','P2',1,'2026-02-01'),"
        "('o2','b','P1',3,'2026-03-01'),('o5','b','P1',1,'2026-03-08'),"
        "('o3','c','P2',1,'2026-03-01'),('o4','d','P3',1,'2026-07-01')"
    )
    yield con
    con.close()


def _stats(con):
    return {
        (r[0], r[1]): r
        for r in con.execute(
            "SELECT industry, product_id, buyers, industry_restaurants, penetration, orders, quantity, "
            "global_penetration, lift, recency_score, smoothed_penetration FROM industry_product_stats"
        ).fetchall()
    }


def test_stats_by_hand(con):
    assert tables.build_industry_product_stats(con) == 4
    s = _stats(con)
    # chicken = a, b, d (3 restaurants); P1 bought by a and b in 3 orders, 6 units.
    _, _, buyers, n, pen, orders, qty, gpen, lift, _, smooth = s[("chicken", "P1")]
    assert (buyers, n, orders, qty) == (2, 3, 3, 6)
    assert pen == pytest.approx(2 / 3)
    assert gpen == pytest.approx(2 / 4)  # 2 of the 4 restaurants bought P1
    assert lift == pytest.approx((2 / 3) / (2 / 4))
    assert smooth == pytest.approx((2 + 5 * 0.5) / (3 + 5))
    # cafe_dessert = c alone: P2 bought by c; P2's global buyers are a and c.
    _, _, buyers, n, pen, *_ = s[("cafe_dessert", "P2")]
    assert (buyers, n, pen) == (1, 1, 1.0)
    assert ("cafe_dessert", "P1") not in s


def test_recency_score_halves_every_half_life(con):
    con.execute("DELETE FROM orders")
    con.execute(
        "INSERT INTO orders VALUES ('x','a','P1',1,'2026-01-01'),"
        "('y','b','P2',1, TIMESTAMP '2026-01-01' - INTERVAL 90 DAY)"
    )
    tables.build_industry_product_stats(con, as_of=datetime(2026, 1, 1))
    s = _stats(con)
    assert ("chicken", "P1") not in s  # an order at the cutoff instant is the future
    tables.build_industry_product_stats(con, as_of=datetime(2026, 1, 2))
    s = _stats(con)
    r1, r2 = s[("chicken", "P1")][9], s[("chicken", "P2")][9]
    # Same quantity; P2's order is one half-life (90 days) older, so it weighs exactly half.
    assert r2 / r1 == pytest.approx(0.5)
    assert s[("chicken", "P1")][3] == 2  # d signs up in June: not a chicken restaurant yet


def test_as_of_excludes_future_orders_and_restaurants(con):
    tables.build_industry_product_stats(con, as_of=datetime(2026, 3, 5))
    s = _stats(con)
    # o5 (2026-03-08) and d (signed up in June) are in the future.
    assert s[("chicken", "P1")][5] == 2  # orders o1, o2
    assert s[("chicken", "P1")][6] == 5  # 2 + 3 units
    assert s[("chicken", "P1")][3] == 2  # a, b
    assert ("chicken", "P3") not in s


def test_top_products_rank_and_idempotency(con):
    tables.build_industry_product_stats(con)
    assert tables.build_industry_top_products(con, k=2) == 3
    first = con.execute("SELECT * FROM industry_top_products ORDER BY industry, rank").fetchall()
    assert [(r[0], r[1], r[2]) for r in first] == [
        ("cafe_dessert", 1, "P2"),
        ("chicken", 1, "P1"),
        (
            "chicken",
            2,
            "P2",
        ),  # P2 and P3: same buyers, P2 more popular globally → higher smoothed score
    ]
    tables.build_industry_top_products(con, k=2)
    assert (
        con.execute("SELECT * FROM industry_top_products ORDER BY industry, rank").fetchall()
        == first
    )


def test_failed_rebuild_keeps_previous_table(con):
    tables.build_industry_product_stats(con)
    before = con.execute("SELECT count(*) FROM industry_product_stats").fetchall()[0][0]
    con.execute("ALTER TABLE orders RENAME COLUMN quantity TO qty")  # breaks the SQL
    with pytest.raises(duckdb.Error):
        tables.build_industry_product_stats(con)
    assert con.execute("SELECT count(*) FROM industry_product_stats").fetchall()[0][0] == before


def test_table_names_must_be_plain_identifiers(con):
    with pytest.raises(ValueError, match="not a plain table name: 'x; DROP TABLE orders'"):
        tables.build_industry_product_stats(con, table="x; DROP TABLE orders")
