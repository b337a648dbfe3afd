"""The set-based batch scoring (the `recommendations` asset) answers what the pyfunc answers.

Real DuckDB file, a real trained booster, the real serving artefacts: every restaurant scored by
`write_recommendations` (SQL features over the model's snapshot, block predict, window top-k) must
get the same products, ranks and scores as the single-restaurant pyfunc request, including the
requests the pyfunc has to clean or label (no label, an unknown label, padded strings, NULLs).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from recsys_assets.ranking import compiled, sql
from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import recommend as rec
from recsys_assets.ranking.pyfunc_model import RankerServer, export_serving_artifacts
from recsys_assets.ranking.train import train_ranker
from tests.test_ranking_dataset import make_synthetic_warehouse

pytestmark = pytest.mark.usefixtures("recsys_home")  # the compiled booster's cache goes there
K = 10
# Requests the pyfunc must clean or label; each restaurant below is edited after the model is built.
EDITS = [
    "DELETE FROM restaurant_industry WHERE restaurant_id IN ('R0000', 'R0001')",  # unlabeled
    (
        "UPDATE restaurant_industry SET industry = 'no_such_industry', confidence = 0.4 "
        "WHERE restaurant_id = 'R0002'"
    ),  # an unknown label: relabeled, its confidence kept
    (
        "UPDATE restaurant_industry SET industry = '  ' || industry || '\u3000', confidence = NULL "
        "WHERE restaurant_id = 'R0003'"
    ),  # padded label, no confidence (the caller asserted it)
    "UPDATE restaurant_industry SET confidence = 'NaN' WHERE restaurant_id = 'R0004'",
    (
        "UPDATE restaurants SET region = ' \t' || region || ' ', size = 'LARGE ' "
        "WHERE restaurant_id = 'R0005'"
    ),
    (
        "UPDATE restaurants SET region = 'Atlantis', size = NULL, menu = NULL "
        "WHERE restaurant_id = 'R0006'"
    ),
    "UPDATE restaurants SET menu = '', size = '' WHERE restaurant_id = 'R0007'",
    "DELETE FROM restaurant_industry WHERE restaurant_id = 'R0008'",
    (
        "UPDATE restaurants SET name = '바삭치킨', menu = '후라이드치킨|치즈볼' "
        "WHERE restaurant_id = 'R0008'"
    ),  # labeled from its text
]
EDITED = [f"R{i:04d}" for i in range(9)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("rk-batch")
    con = make_synthetic_warehouse(root / "w.duckdb", n_restaurants=300, seed=3)
    dset = ds.build_ranking_dataset(con)
    trained = train_ranker(con, dset, {"num_boost_round": 40})
    export_serving_artifacts(con, trained, dset, root / "serving")
    for statement in EDITS:
        con.execute(statement)
    yield con, RankerServer(root / "serving")
    con.close()


def _pyfunc_one(con: duckdb.DuckDBPyConnection, server: RankerServer, rid: str) -> pd.DataFrame:
    """The pyfunc's answer to one restaurant's request (the warehouse row as serving gets it)."""
    req = sql.run(
        con, "restaurant_requests", {"ids": [rid]}, {"latest_labels": sql.load("latest_labels")}
    ).df()
    req["k"] = K
    return server.recommend(req)


def test_set_based_matches_the_single_restaurant_pyfunc(served):
    con, server = served
    batch = rec.recommend_for_restaurants(con, k=K, server=server, model_version="7")
    n_rest = con.execute("SELECT count(*) FROM restaurants").fetchall()[0][0]
    assert batch["restaurant_id"].nunique() == n_rest
    assert set(batch["model_version"]) == {"7"}
    rng = np.random.default_rng(0)
    others = [f"R{i:04d}" for i in rng.choice(np.arange(9, n_rest), size=25, replace=False)]
    for rid in [*EDITED, *others]:
        one = _pyfunc_one(con, server, rid)
        got = batch[batch["restaurant_id"] == rid]
        assert len(one) == K, rid
        assert got["product_id"].tolist() == one["product_id"].tolist(), rid
        assert got["rank"].tolist() == one["rank"].tolist() == list(range(1, K + 1)), rid
        assert got["score"].tolist() == one["score"].tolist(), rid  # the same floats, bit for bit


def test_the_whole_base_matches_one_pyfunc_batch(served):
    """Every restaurant, not just a sample: the pyfunc's own batch over all requests agrees."""
    con, server = served
    batch = rec.recommend_for_restaurants(con, k=3, server=server)
    reqs = sql.run(
        con, "restaurant_requests", {"ids": None}, {"latest_labels": sql.load("latest_labels")}
    ).df()
    reqs["k"] = 3
    ref = server.recommend(reqs)[["restaurant_id", "rank", "product_id", "score"]]
    got = batch[["restaurant_id", "rank", "product_id", "score"]]
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True),
        ref.sort_values(["restaurant_id", "rank"]).reset_index(drop=True),
        check_dtype=False,
    )
    assert set(batch["model_version"]) == {"unregistered"}


def test_write_recommendations_replaces_the_table_and_leaves_no_trace(served, monkeypatch):
    con, server = served
    monkeypatch.setattr(rec, "RESTAURANTS_PER_BATCH", 7)  # many blocks, one ragged
    version = rec.write_recommendations(
        con, "recs_test", k=4, server=server, model_version="3", restaurant_ids=EDITED
    )
    assert version == "3"
    rows = con.execute(
        "SELECT restaurant_id, count(*), min(rank), max(rank), any_value(model_version) "
        "FROM recs_test GROUP BY restaurant_id ORDER BY restaurant_id"
    ).fetchall()
    assert rows == [(rid, 4, 1, 4, "3") for rid in EDITED]
    cols = con.execute("DESCRIBE recs_test").fetchall()
    assert [(c[0], c[1]) for c in cols] == [
        ("restaurant_id", "VARCHAR"),
        ("rank", "INTEGER"),
        ("product_id", "VARCHAR"),
        ("score", "DOUBLE"),
        ("model_version", "VARCHAR"),
    ]
    # The serving snapshot was attached only while scoring; names resolve to the warehouse again.
    assert "rk_serving" not in {r[0] for r in con.execute("SHOW DATABASES").fetchall()}
    snaps = con.execute("SELECT count(DISTINCT snapshot) FROM rk_snap_prod").fetchall()[0][0]
    assert snaps > 1  # the warehouse's table (every snapshot), not the model's one-snapshot copy


def test_a_bad_table_name_is_refused(served):
    con, server = served
    with pytest.raises(ValueError, match="not a table name"):
        rec.write_recommendations(con, "x; DROP TABLE orders", server=server)


def test_the_compiled_booster_scores_bit_for_bit_and_is_cached(served, tmp_path):
    """LightGBM's floats from the compiled booster, on rows with NaNs and with category codes
    seen, unseen and negative; a second compile of the same model loads the cached code."""
    _, server = served
    feats = server.features
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, len(feats))) * 3
    x[rng.random(x.shape) < 0.1] = np.nan
    cats = [feats.index(c) for c in ("industry_code", "region_code", "category_code")]
    x[:, cats] = rng.integers(-1, 40, size=(5000, len(cats)))
    fast = compiled.compile_booster(server.artifacts["booster"], tmp_path)
    assert fast is not None
    assert np.array_equal(fast(x, 2), server.booster.predict(x))
    assert compiled.checked(fast, server.booster, x)
    cached = list(tmp_path.glob("*.so"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    again = compiled.compile_booster(server.artifacts["booster"], tmp_path)
    assert again is not None and np.array_equal(again(x, 1), server.booster.predict(x))
    assert list(tmp_path.glob("*.so")) == cached and cached[0].stat().st_mtime_ns == mtime


@pytest.mark.parametrize("block_trees", [1, 3, 34, 1000])
def test_any_cache_block_size_adds_the_trees_in_lightgbms_order(
    served, tmp_path, monkeypatch, block_trees
):
    """Blocks of trees (one, a ragged split of the 40, two, all in one) give LightGBM's floats:
    each block goes on from the row's partial score, so the sum's order is LightGBM's."""
    _, server = served
    monkeypatch.setattr(compiled, "BLOCK_TREES", block_trees)
    x = np.random.default_rng(2).normal(size=(20_000, len(server.features))) * 3
    x[np.random.default_rng(3).random(x.shape) < 0.1] = np.nan
    fast = compiled.compile_booster(server.artifacts["booster"], tmp_path)
    assert fast is not None
    assert np.array_equal(fast(x, 2), server.booster.predict(x))
    assert [p.name.split("-")[1] for p in tmp_path.glob("*.so")] == [f"blocks{block_trees}"]


def test_a_compile_with_another_block_size_is_not_the_cached_one(served, tmp_path, monkeypatch):
    """The block size is part of the cache key: a file compiled with other blocks (or by the
    former one-block layout) is neither loaded nor counted as cached."""
    _, server = served
    booster = server.artifacts["booster"]
    (tmp_path / f"{compiled._model_digest(Path(booster))}-plain-1.3.0-0.44.0-x.so").write_bytes(b"")
    assert not compiled._in_cache(Path(booster), tmp_path)
    assert compiled.compile_booster(booster, tmp_path) is not None
    assert compiled._in_cache(Path(booster), tmp_path)
    monkeypatch.setattr(compiled, "BLOCK_TREES", compiled.BLOCK_TREES + 1)
    assert not compiled._in_cache(Path(booster), tmp_path)


def test_the_batch_scores_with_the_compiled_booster_or_falls_back(served, monkeypatch):
    """The asset's path really uses the compiled booster (its check passed), and without it
    (a failed compile) LightGBM gives the same table."""
    con, server = served
    seen: list[bool] = []
    check = compiled.checked
    monkeypatch.setattr(compiled, "checked", lambda *a: seen.append(check(*a)) or seen[-1])
    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", 0)  # compiled whatever the rows
    fast = rec.recommend_for_restaurants(con, k=K, server=server, restaurant_ids=EDITED)
    assert seen == [True]
    monkeypatch.setattr(compiled, "compile_booster", lambda *a, **kw: None)
    slow = rec.recommend_for_restaurants(con, k=K, server=server, restaurant_ids=EDITED)
    assert seen == [True, False]
    pd.testing.assert_frame_equal(fast, slow)


def test_too_few_rows_are_scored_by_lightgbm_unless_already_compiled(served, tmp_path, monkeypatch):
    """Below COMPILE_MIN_ROWS a booster is not compiled (the batch is LightGBM's, the same
    table), but one already in the cache is used whatever the rows."""
    con, server = served
    booster = server.artifacts["booster"]
    small = compiled.COMPILE_MIN_ROWS - 1
    assert compiled.compile_booster(booster, tmp_path, rows=small) is None
    assert not list(tmp_path.glob("*.so"))
    assert compiled.compile_booster(booster, tmp_path, rows=compiled.COMPILE_MIN_ROWS) is not None
    assert compiled.compile_booster(booster, tmp_path, rows=small) is not None  # the cached one

    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", 0)
    fast = rec.recommend_for_restaurants(con, k=K, server=server, restaurant_ids=EDITED)
    calls: list[int | None] = []
    real = compiled.compile_booster
    monkeypatch.setattr(
        compiled, "compile_booster", lambda f, d, rows=None: calls.append(rows) or real(f, d, rows)
    )
    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", 10**12)
    monkeypatch.setattr(compiled, "_in_cache", lambda *a: False)
    slow = rec.recommend_for_restaurants(con, k=K, server=server, restaurant_ids=EDITED)
    assert len(calls) == 1 and 0 < calls[0] < 10**12  # the rows were counted, not compiled
    pd.testing.assert_frame_equal(fast, slow)


def test_ranker_model_compiles_only_when_the_rebuilds_rows_repay_it(served, tmp_path, monkeypatch):
    """ranker_model's holdout scoring gets the compile cache only when the holdout's candidates
    plus as many per restaurant for every restaurant served reach COMPILE_MIN_ROWS."""
    from types import SimpleNamespace

    from recsys_assets.orchestration.ranking import _compiled_cache

    con, _ = served
    test = con.execute(
        "SELECT count(*), count(DISTINCT restaurant_id) FROM rk_candidates WHERE split = 'test'"
    ).fetchone()
    (restaurants,) = con.execute("SELECT count(*) FROM restaurants").fetchone()
    rows = test[0] + test[0] / test[1] * restaurants
    settings = SimpleNamespace(home=tmp_path)
    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", int(rows) + 1)
    assert _compiled_cache(settings, con) is None
    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", int(rows))
    assert _compiled_cache(settings, con) == rec.compiled_cache_dir(settings)
