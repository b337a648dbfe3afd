"""The numpy pieces behind the two menu baselines (`ranking.menu_baselines`) against plain
definitions: top-k per row with ties by column, DuckDB's `round`, sums that keep zero entries.
The baselines' rows as a whole are compared with the former SQL in test_ranking_evaluate.py."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from recsys_assets.ranking import menu_baselines as mb


def _reference_top_k(rows, cols, values, k):
    f = pd.DataFrame({"r": rows, "c": cols, "v": values})
    f = f.sort_values(["r", "v", "c"], ascending=[True, False, True], kind="mergesort")
    f = f[f.groupby("r").cumcount() < k]
    return f["r"].to_numpy(), f["c"].to_numpy(), f["v"].to_numpy()


@pytest.mark.parametrize(("high", "k"), [(5, 3), (1_000, 50), (10**9, 7), (2**61, 4)])
def test_top_k_ints_is_a_sort_by_value_then_column(high, k):
    """Many ties at the cut (small `high`), wide values, and values too wide to pack (lexsort)."""
    rng = np.random.default_rng(high)
    n = 20_000
    pairs = np.unique(rng.integers(0, 300 * 997, n))  # distinct (row, column) entries
    rows, cols = pairs // 997, pairs % 997
    values = rng.integers(0, high, len(pairs), dtype=np.int64)
    got = mb._top_k_ints(rows, cols, values, k, 997)
    for g, w in zip(got, _reference_top_k(rows, cols, values, k), strict=True):
        assert np.array_equal(g, w)


def test_round_half_away_is_duckdbs_round():
    halves = (np.arange(-2000, 2000) + 0.5) / 1e9  # x * 1e9 lands on .5 for many of these
    rng = np.random.default_rng(0)
    values = np.concatenate([halves, rng.random(5000), rng.random(5000) * 1e-6, [0.0, 1.0]])
    con = duckdb.connect()
    con.register("vals", pd.DataFrame({"v": values}))
    want = con.execute("SELECT round(v, 9) AS r FROM vals").fetchnumpy()["r"]
    got = mb._round_half_away(values * 1e9) / 1e9
    assert np.array_equal(got, want)
    assert (np.abs(values * 1e9 - np.trunc(values * 1e9)) == 0.5).sum() > 100  # halves tested


def test_summed_keeps_products_of_zero_similarity_neighbours():
    """A neighbour whose rounded similarity is 0 still lists what it bought (score 0), as the
    SQL's join and sum did; purchases listed twice count twice."""
    buys = mb._csr(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 2]), None, (3, 4))
    r, nb, units = np.array([0, 0, 1]), np.array([0, 1, 2]), np.array([5, 0, 3])
    got = mb._summed(r, nb, units, buys, (2, 3))
    assert got.toarray().tolist() == [[5, 0, 0, 0], [0, 0, 6, 0]]
    assert sorted(zip(*got.nonzero(), strict=True)) == [(0, 0), (1, 2)]  # nonzero() skips 0s
    assert got.nnz == 3 and got[0, 1] == 0  # (query 0, product 1) is stored, with score 0
