"""The shared candidate-feature SQL against its previous text, kept in tests/candidate_oracle/.

The SQL now looks up the token x product statistics (rk_snap_token_prod) and the token basket
shares (rk_snap_token_share) in ONE table, their full outer join, instead of two LEFT JOINs per
(query, candidate, known token) row (the largest join of the step). Both texts run over the same
ranking dataset (every snapshot's queries and menu tokens): the same rows, identical ids, integers
and codes, floats within 1e-9 relative (DuckDB's parallel sums add in a varying order), and the
pairs that only one of the two tables holds are there (some shares deleted for that), so both of
the outer join's NULL sides are compared.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recsys_assets import taxonomy
from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import sql
from tests.test_ranking_dataset import make_synthetic_warehouse
from tests.test_snapshot_tables import assert_same_frame

ORACLE = Path(__file__).parent / "candidate_oracle" / "candidate_features.sql"


def _oracle_sql() -> str:
    return (
        ORACLE.read_text(encoding="utf-8")
        .replace("{{feature_columns}}", ds.feature_columns_sql())
        .replace("{{queries}}", "rk_queries")
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    con = make_synthetic_warehouse(tmp_path_factory.mktemp("cf") / "w.duckdb", 300, seed=11)
    dset = ds.build_ranking_dataset(con, industries=taxonomy.INDUSTRY_CODES)
    # Real share tables hold every pair the token statistics hold (and more): drop some shares so
    # that pairs with statistics but no share occur too.
    con.execute("DELETE FROM rk_snap_token_share WHERE hash(token, product_id) % 5 = 0")
    yield con, dset
    con.close()


def _frame(con, text: str, params: dict) -> pd.DataFrame:
    return con.execute(
        f"SELECT * FROM ({text}) ORDER BY restaurant_id, product_id",
        sql.params_for(text, params),
    ).df()


def test_candidate_features_equal_the_previous_sql(built):
    con, dset = built
    params = ds.candidate_params(dset.config)
    got = _frame(con, ds.candidate_feature_sql(), params)
    want = _frame(con, _oracle_sql(), params)
    assert len(got) == len(want) > 1000
    assert_same_frame(got, want)
    # The menu-token features are there, not only their defaults.
    assert (got["n_known_tokens"] > 0).mean() > 0.5
    assert (got["token_share_log_lift_sum"] != 0).any() and got["token_pen_max"].notna().any()


def test_each_token_table_holds_pairs_the_other_lacks(built):
    """The outer join's both one-sided cases occur in the compared data."""
    con, _ = built
    only = con.execute(
        "SELECT count(*) FILTER (WHERE tp.token IS NULL), count(*) FILTER (WHERE ts.token IS NULL) "
        "FROM rk_snap_token_prod tp FULL JOIN rk_snap_token_share ts "
        "USING (snapshot, token, product_id)"
    ).fetchall()[0]
    assert only[0] > 0 and only[1] > 0
