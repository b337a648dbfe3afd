"""The candidate features against their previous definition, kept in tests/candidate_oracle/.

The menu-token aggregates were one SQL statement: a row per (query, candidate, known token), joined
to the token x product statistics and grouped back. They are now summed in numpy
(ranking/token_features.py) over candidates and tokens that smaller SQL statements find. Both run
over the same ranking dataset: the same rows, identical ids, integers and codes, floats within
1e-9 relative (sums add in another order), over every snapshot's queries at once (a block of
several snapshots), one snapshot's, an empty set of queries, and queries made for the edge cases:
no menu, no known token, a known token inside a longer word, tokens whose products only one of
the two token tables holds (some shares deleted for that). Both lookups of the statistics (the
one value table, a table per range of products) and the chunking of the token rows are compared.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recsys_assets import taxonomy
from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import sql, token_features
from recsys_assets.ranking.features import feature_columns_sql
from recsys_assets.ranking.token_features import candidate_features
from tests.test_ranking_dataset import make_synthetic_warehouse
from tests.test_snapshot_tables import assert_same_frame

ORACLE = Path(__file__).parent / "candidate_oracle" / "candidate_features.sql"
# Sums of logarithms that may cancel to ~0 (compared with 1e-12 absolute too).
NEAR_ZERO = ("token_log_lift_mean", "token_share_log_lift_sum")


def _oracle_sql(queries: str) -> str:
    return (
        ORACLE.read_text(encoding="utf-8")
        .replace("{{feature_columns}}", feature_columns_sql())
        .replace("{{queries}}", queries)
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    con = make_synthetic_warehouse(tmp_path_factory.mktemp("cf") / "w.duckdb", 300, seed=11)
    dset = ds.build_ranking_dataset(con, industries=taxonomy.INDUSTRY_CODES)
    # Real share tables hold every pair the token statistics hold (and more): drop some shares so
    # that pairs with statistics but no share occur too.
    con.execute("DELETE FROM rk_snap_token_share WHERE hash(token, product_id) % 5 = 0")
    _edge_queries(con, dset)
    yield con, dset
    con.close()


def _edge_queries(con, dset) -> None:
    """rk_edge_queries: serving queries at the cutoff whose menus hit the edge cases, written into
    rk_menu_tokens (under ids no restaurant has)."""
    known = [
        r[0]
        for r in con.execute(
            "SELECT token FROM rk_snap_token WHERE snapshot = $s ORDER BY n_t DESC, token",
            {"s": dset.cutoff},
        ).fetchall()
    ]
    menus = {
        "E0_none": [],  # no menu at all
        "E1_unknown": ["없는메뉴", "zz"],  # words, none known or containing a known token
        "E2_inside": [f"특{known[0]}세트"],  # only a known token inside a longer word
        "E3_both": [known[0], f"{known[1]}정식", "없는메뉴"],
        "E4_many": known[:8],
    }
    q = con.execute(
        "SELECT * FROM rk_queries WHERE snapshot = $s ORDER BY restaurant_id LIMIT $n",
        {"s": dset.cutoff, "n": len(menus)},
    ).df()
    q["restaurant_id"] = list(menus)
    con.register("edge_df", q)
    con.execute("CREATE TABLE rk_edge_queries AS SELECT * FROM edge_df")
    con.unregister("edge_df")
    pairs = [(rid, t) for rid, tokens in menus.items() for t in tokens]
    con.executemany("INSERT INTO rk_menu_tokens VALUES (?, ?)", pairs)


def _frames(con, params: dict, queries: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(new, oracle) feature rows of `queries`, ordered."""
    with candidate_features(con, params, queries) as text:
        got = con.execute(f"SELECT * FROM ({text}) ORDER BY restaurant_id, product_id").df()
    old = _oracle_sql(queries)
    want = con.execute(
        f"SELECT * FROM ({old}) ORDER BY restaurant_id, product_id", sql.params_for(old, params)
    ).df()
    return got, want


def test_candidate_features_equal_the_previous_sql_over_every_snapshot(built):
    con, dset = built
    assert con.execute("SELECT count(DISTINCT snapshot) FROM rk_queries").fetchall()[0][0] > 3
    got, want = _frames(con, ds.candidate_params(dset.config), "rk_queries")
    assert len(got) == len(want) > 1000
    assert_same_frame(got, want, NEAR_ZERO)
    # The menu-token features are there, not only their defaults.
    assert (got["n_known_tokens"] > 0).mean() > 0.5
    assert (got["token_share_log_lift_sum"] != 0).any() and got["token_pen_max"].notna().any()
    # ... and so are queries without a known token.
    assert (got["n_known_tokens"] == 0).any()


def test_the_edge_cases_equal_the_previous_sql(built):
    con, dset = built
    got, want = _frames(con, ds.candidate_params(dset.config), "rk_edge_queries")
    assert_same_frame(got, want, NEAR_ZERO)
    n = got.groupby("restaurant_id")["n_known_tokens"].max()
    assert n["E0_none"] == n["E1_unknown"] == 0
    assert n["E2_inside"] == 1 and n["E3_both"] == 2 and n["E4_many"] == 8
    assert got["token_pen_max"][got["restaurant_id"] == "E0_none"].isna().all()


def test_without_the_inside_match_with_small_chunks_and_a_table_per_product(built, monkeypatch):
    """Another parameter set (no containment match, other smoothing), the token rows in chunks of
    a few pairs, a value table per product instead of one for all."""
    con, dset = built
    monkeypatch.setattr(token_features, "ROWS_PER_CHUNK", 7)
    monkeypatch.setattr(token_features, "DENSE_LOOKUP_CELLS", 0)
    params = {**ds.candidate_params(dset.config), "contain_min_len": 1_000, "share_a": 2.5}
    params["a"] = 3.0
    got, want = _frames(con, params, "rk_edge_queries")
    assert_same_frame(got, want, NEAR_ZERO)
    assert got.groupby("restaurant_id")["n_known_tokens"].max()["E2_inside"] == 0
    con.execute(
        "CREATE OR REPLACE TEMP TABLE one_snapshot AS SELECT * FROM rk_queries "
        "WHERE snapshot = (SELECT max(snapshot) FROM rk_queries WHERE split = 'train')"
    )
    got, want = _frames(con, params, "one_snapshot")
    assert len(got) == len(want) > 100
    assert_same_frame(got, want, NEAR_ZERO)


def test_no_queries_give_no_rows_with_the_same_columns(built):
    con, dset = built
    con.execute("CREATE OR REPLACE TEMP TABLE no_queries AS SELECT * FROM rk_queries LIMIT 0")
    got, want = _frames(con, ds.candidate_params(dset.config), "no_queries")
    assert got.empty and want.empty
    assert list(got.columns) == list(want.columns)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert not {t for t in tables if t.startswith("rk_cf_")}  # the work tables are gone


def test_each_token_table_holds_pairs_the_other_lacks(built):
    """The outer join's both one-sided cases occur in the compared data."""
    con, _ = built
    only = con.execute(
        "SELECT count(*) FILTER (WHERE tp.token IS NULL), count(*) FILTER (WHERE ts.token IS NULL) "
        "FROM rk_snap_token_prod tp FULL JOIN rk_snap_token_share ts "
        "USING (snapshot, token, product_id)"
    ).fetchall()[0]
    assert only[0] > 0 and only[1] > 0
