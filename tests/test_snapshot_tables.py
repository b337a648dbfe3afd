"""The snapshot tables built for every snapshot at once equal the per-snapshot SQL they replaced.

tests/snapshot_oracle/ holds the previous SQL, which recomputed each snapshot from the whole order
history; it runs here snapshot by snapshot on a copy of the same warehouse. Every rk_snap_* table
must have the same rows and columns, identical keys, integers and ranks, and floats within 1e-9
relative. The generated sample gets the awkward cases on top: a restaurant with two label rows
(same industry) and one with two industries, orders before a sign-up, an order id shared by two
restaurants, order lines exactly at a snapshot's midnight and at the cutoff, and products bought in
exactly the same order lines (ties in every statistic but the product id). rk_snap_basket and
rk_snap_token_share are summed in numpy (ranking/basket_shares.py), not in SQL: the same oracle
holds them to the same rows and 1e-9.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from recsys_assets import taxonomy
from recsys_assets.ranking import basket_shares, sql
from recsys_assets.ranking import dataset as ds
from recsys_assets.warehouse import tables
from tests.test_ranking_dataset import make_synthetic_warehouse

ORACLE = Path(__file__).parent / "snapshot_oracle"
KEYS = {
    "rk_snap_prod": ["snapshot", "product_id"],
    "rk_snap_ind_prod": ["snapshot", "industry", "product_id"],
    "rk_snap_ind_cat": ["snapshot", "industry", "category"],
    "rk_snap_token": ["snapshot", "token"],
    "rk_snap_token_prod": ["snapshot", "token", "product_id"],
    "rk_snap_basket": ["snapshot", "product_id"],
    "rk_snap_token_share": ["snapshot", "token", "product_id"],
}


def _oracle(name: str) -> str:
    """The previous SQL of `name`; a table still built per snapshot (rk_snap_ind_cat) has none."""
    path = ORACLE / f"{name}.sql"
    return path.read_text(encoding="utf-8") if path.exists() else sql.load(name)


def _awkward_cases(con: duckdb.DuckDBPyConnection) -> None:
    """Edits of the generated sample that the set-based SQL must count as the old SQL did."""
    con.execute(
        "INSERT INTO restaurant_industry SELECT * FROM restaurant_industry "
        "WHERE restaurant_id = 'R0001'"
    )
    con.execute(
        "INSERT INTO restaurant_industry SELECT restaurant_id, "
        "CASE industry WHEN 'pizza' THEN 'korean' ELSE 'pizza' END, confidence, source, "
        "labeled_at FROM restaurant_industry WHERE restaurant_id = 'R0002'"
    )
    first, cutoff = con.execute(
        "SELECT min(ordered_at), max(ordered_at) - INTERVAL 90 DAY FROM orders"
    ).fetchall()[0]
    midnights = [datetime(first.year, first.month, 1) + timedelta(days=31 * k) for k in (3, 6, 9)]
    midnights = [datetime(m.year, m.month, 1) for m in midnights]
    midnights.append(datetime(cutoff.year, cutoff.month, cutoff.day) + timedelta(days=1))
    rows = [(f"MID{i}", "R0005", "P003", 2.0, m) for i, m in enumerate(midnights)]
    signup = con.execute("SELECT signup_date FROM restaurants WHERE restaurant_id = 'R0003'")
    early = datetime.combine(signup.fetchall()[0][0], datetime.min.time()) - timedelta(days=3)
    rows += [("EARLY", "R0003", "P001", 3.0, early), ("EARLY", "R0003", "P002", 1.0, early)]
    rows += [("SHARED", "R0002", "P010", 1.0, early), ("SHARED", "R0004", "P010", 5.0, early)]
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)
    # Two more products bought in exactly P039's order lines: tied in everything but the id.
    con.execute(
        "INSERT INTO products SELECT 'P04' || k, name || k, category, unit_price "
        "FROM products, range(2) t(k) WHERE product_id = 'P039'"
    )
    con.execute(
        "INSERT INTO orders SELECT order_id, restaurant_id, 'P04' || k, quantity, ordered_at "
        "FROM orders, range(2) t(k) WHERE product_id = 'P039'"
    )


def _build_with_oracle(con: duckdb.DuckDBPyConnection, dset: ds.RankingDataset) -> None:
    """The snapshot tables as the previous code built them: every table, snapshot by snapshot."""
    ds._build_base_tables(con, dset.config, dset.industries)
    cfg = dset.config
    fragments = {
        "industry_product_stats": _oracle("industry_product_stats"),
        "basket_shares": _oracle("basket_shares"),
    }
    for i, s in enumerate([*dset.snapshots, dset.serving_snapshot]):
        params = {
            "snapshot": s,
            "horizon_days": cfg.horizon_days,
            "new_smoothing": cfg.new_smoothing,
            "token_min_support": cfg.token_min_support,
            "token_min_pair": cfg.token_min_pair,
            "token_smoothing": cfg.token_smoothing,
            "as_of": datetime(s.year, s.month, s.day),
            "smoothing": tables.SMOOTHING_RESTAURANTS,
            "half_life": tables.RECENCY_HALF_LIFE_DAYS,
        }
        for table in ds.SNAPSHOT_TABLES:
            verb = f"INSERT INTO {table} BY NAME" if i else f"CREATE TABLE {table} AS"
            text = sql._FRAGMENT.sub(lambda m: fragments[m.group(1)], _oracle(table[3:]))
            con.execute(f"{verb}\n{text}", sql.params_for(text, params))


def _tied_rank(f: pd.DataFrame, tiers: pd.Series) -> pd.Series:
    """ind_rank with every member of a tie group (`tiers`) given the group's best rank."""
    return f["ind_rank"].groupby([f["snapshot"], f["industry"], tiers]).transform("min")


def _recency_tiers(f: pd.DataFrame) -> pd.Series:
    """Tie groups of ind_rank's order (smoothed penetration, recency score, ...): rows of equal
    smoothed penetration whose recency scores are within 1e-12 relative (a float sum's last bits
    depend on the order it adds in, in the previous SQL as in the new one)."""
    part = ["snapshot", "industry"]
    keys = ["ind_smoothed_penetration"]
    f = f.sort_values([*part, *keys, "ind_recency_score"])
    prev = f.groupby(part)[[*keys, "ind_recency_score"]].shift()
    new_tier = (
        prev["ind_recency_score"].isna()
        | (prev[keys] != f[keys]).any(axis=1)
        | (f["ind_recency_score"] - prev["ind_recency_score"] > 1e-12 * f["ind_recency_score"])
    )
    return new_tier.cumsum().sort_index()


def _table(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    keys = ", ".join(KEYS[table])
    return con.execute(f"SELECT * FROM {table} ORDER BY {keys}").df()


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame, near_zero: tuple[str, ...] = ()):
    """The oracle comparison: same columns and dtypes, every non-float column identical, floats
    within 1e-9 relative (DuckDB's parallel sums add in a varying order); the `near_zero` float
    columns (sums that cancel to ~0) also get 1e-12 absolute."""
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    floats = [c for c in got.columns if got[c].dtype.kind == "f" and c not in near_zero]
    exact = [c for c in got.columns if c not in floats and c not in near_zero]
    pd.testing.assert_frame_equal(got[exact], want[exact], check_exact=True)
    pd.testing.assert_frame_equal(got[floats], want[floats], check_exact=False, rtol=1e-9, atol=0)
    near = list(near_zero)
    pd.testing.assert_frame_equal(got[near], want[near], check_exact=False, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(new connection, oracle connection, dataset): one warehouse, built both ways."""
    tmp = tmp_path_factory.mktemp("snaps")
    con = make_synthetic_warehouse(tmp / "new.duckdb", n_restaurants=400, seed=5)
    _awkward_cases(con)
    con.close()
    shutil.copy(tmp / "new.duckdb", tmp / "old.duckdb")
    new = duckdb.connect(str(tmp / "new.duckdb"))
    dset = ds.build_ranking_dataset(new, industries=taxonomy.INDUSTRY_CODES)
    old = duckdb.connect(str(tmp / "old.duckdb"))
    _build_with_oracle(old, dset)
    yield new, old, dset
    new.close()
    old.close()


@pytest.mark.parametrize("table", ds.SNAPSHOT_TABLES)
def test_snapshot_table_equals_the_per_snapshot_sql(pair, table):
    new, old, dset = pair
    got, want = _table(new, table), _table(old, table)
    assert len(got) == len(want) > 0
    # Every snapshot is there, the cutoff (not a month start) and the serving snapshot included.
    assert set(got["snapshot"].dt.date) == {*dset.snapshots, dset.serving_snapshot}
    assert dset.cutoff.day != 1
    if table == "rk_snap_ind_prod":
        # Identical ranks, except that products tied within float noise share their best rank.
        tiers = _recency_tiers(want)
        assert tiers.duplicated().any()  # the tied products of _awkward_cases
        got["ind_rank"], want["ind_rank"] = _tied_rank(got, tiers), _tied_rank(want, tiers)
    assert_same_frame(got, want)


def test_the_awkward_cases_reach_the_statistics(pair):
    """The edits above are in the compared tables (so the comparison covers them)."""
    new, _, dset = pair
    tied = new.execute(
        "SELECT count(DISTINCT ind_rank), count(DISTINCT (ind_smoothed_penetration, "
        "round(ind_recency_score, 9), ind_qty_per_restaurant)) FROM rk_snap_ind_prod "
        "WHERE snapshot = $s AND industry = 'pizza' AND product_id IN ('P039', 'P040', 'P041')",
        {"s": dset.cutoff},
    ).fetchall()[0]
    assert tied == (3, 1)
    two_labels = new.execute(
        "SELECT count(DISTINCT industry) FROM restaurant_industry WHERE restaurant_id = 'R0002'"
    ).fetchall()[0][0]
    assert two_labels == 2


def test_the_warehouse_table_is_the_same_sql_as_of_now(pair):
    """industry_product_stats (one as_of: just after the newest order) equals the previous SQL."""
    new, _, _ = pair
    newest = new.execute("SELECT max(ordered_at) FROM orders").fetchall()[0][0]
    tables.build_industry_product_stats(new, table="t_stats_now")
    got = new.execute("SELECT * FROM t_stats_now ORDER BY industry, product_id").df()
    want = new.execute(
        f"SELECT * FROM ({_oracle('industry_product_stats')}) ORDER BY industry, product_id",
        {
            "as_of": newest + timedelta(seconds=1),
            "smoothing": tables.SMOOTHING_RESTAURANTS,
            "half_life": tables.RECENCY_HALF_LIFE_DAYS,
        },
    ).df()
    new.execute("DROP TABLE t_stats_now")
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=0)


def test_as_of_is_sorted_and_must_not_be_empty():
    a, b = datetime(2025, 3, 1), datetime(2025, 1, 5)
    assert tables.industry_product_stats_params([a, b, a])["as_of"] == [b, a]
    with pytest.raises(ValueError, match="at least one"):
        tables.industry_product_stats_params([])


def test_basket_sums_without_any_share_are_empty_tables_of_the_right_types():
    """No restaurant with a share at any snapshot (e.g. no window ended yet): empty, typed tables."""
    none = {"rid": np.array([], np.int32), "pid": np.array([], np.int32)}
    deltas = {**none, "j": np.array([], np.int32), "dq": np.array([], np.float64)}
    known = {"tid": np.array([1], np.int32), "j": np.array([2], np.int32)}
    menus = {"rid": np.array([1], np.int32), "tid": np.array([1], np.int32)}
    means, sums = basket_shares._basket_sums(deltas, menus, known, n_snapshots=3)
    assert means.num_rows == sums.num_rows == 0
    assert [str(t) for t in sums.schema.types] == ["int32", "int32", "int32", "double"]
    assert [str(t) for t in means.schema.types] == ["int32", "int32", "double"]


def _replace(con: duckdb.DuckDBPyConnection, table: str, frame) -> None:
    """`table` := `frame` (an Arrow table: the column types stay as they were)."""
    con.register("t_frame", frame)
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM t_frame")
    con.unregister("t_frame")


def test_the_candidate_frame_equals_the_one_from_the_oracle_basket_tables(pair):
    """rk_candidates built again on the oracle's warehouse, with its rk_snap_basket and
    rk_snap_token_share (per-snapshot SQL) and the new build's other snapshot tables (their ranks
    differ on float ties, above): the same rows, identical integers and categories, floats within
    1e-9 relative. A sum of logs of both signs (token_share_log_lift_sum) can cancel to ~1e-6 from
    terms ~1, so its last-bit differences are held to 1e-12 absolute (the candidate SQL run twice
    differs as much)."""
    new, old, dset = pair
    others = [t for t in ds.SNAPSHOT_TABLES if t not in ds.BASKET_TABLES]
    kept = {t: old.sql(f"SELECT * FROM {t}").to_arrow_table() for t in others}
    try:
        for t in others:
            _replace(old, t, new.sql(f"SELECT * FROM {t}").to_arrow_table())
        ds._build_queries(old, dset.cutoff, dset.data_end, dset.snapshots, dset.config)
        ds._build_truth(old, dset.relevance_thresholds)
        ds._build_candidates(old, dset.config)
    finally:
        for t, frame in kept.items():
            _replace(old, t, frame)
    q = "SELECT * FROM rk_candidates ORDER BY restaurant_id, product_id"
    got, want = new.execute(q).df(), old.execute(q).df()
    assert len(got) == len(want) > 1000
    assert (got["token_share_max"] > 0).any()  # the basket shares reach the frame
    assert_same_frame(got, want, near_zero=("token_share_log_lift_sum",))
