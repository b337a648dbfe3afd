"""The feature registry (one entry per feature, features.md generated from it) and the industry
codes a trained model keeps: inserting an industry into the taxonomy must not change its scores.

Real DuckDB files, the real training and the real serving code (RankerServer over exported files).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recsys_assets import taxonomy
from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import features
from recsys_assets.ranking.evaluate import model_rankings, score_with_booster
from recsys_assets.ranking.pyfunc_model import META_FILE, RankerServer, export_serving_artifacts
from recsys_assets.ranking.train import TrainedRanker, score_frame, train_ranker
from tests.test_ranking_dataset import SYN_INDUSTRIES, make_synthetic_warehouse

WAREHOUSE = {"n_restaurants": 300, "seed": 7}
NEW = "aaa_new_industry"  # sorts first: inserted before every existing industry
REQUESTS = pd.DataFrame(
    {
        "industry": list(SYN_INDUSTRIES),
        "menu": ["치즈볼|양념치킨", "파스타", "김치찌개", "라떼|케이크"],
        "name": [""] * len(SYN_INDUSTRIES),
        "k": [20] * len(SYN_INDUSTRIES),
    }
)


def _warehouse(path):
    con = make_synthetic_warehouse(path, **WAREHOUSE)
    con.execute("SET threads TO 1")  # bit-for-bit repeatable sums, so two builds compare exactly
    return con


def _industry_ranker(con) -> TrainedRanker:
    """A small booster that must split on industry_code: on the synthetic data the ind_* features
    already say everything the industry does, so the full ranker has no use for the code."""
    import lightgbm as lgb

    train = ds.load_split(con, "train")
    names = ["industry_code", "category_code", "global_penetration"]
    params = {
        "objective": "lambdarank",
        "verbosity": -1,
        "seed": 1,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "min_data_per_group": 5,
        "cat_smooth": 1.0,
    }
    data = lgb.Dataset(
        train[names].astype("float64"),
        label=train["relevance"].to_numpy(),
        group=train.groupby("restaurant_id", sort=False).size().to_numpy(),
        feature_name=names,
        categorical_feature=["industry_code", "category_code"],
    )
    return TrainedRanker(lgb.train(params, data, num_boost_round=30), names, params, 30, 0.0)


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("rk-features")
    con = _warehouse(root / "w.duckdb")
    dset = ds.build_ranking_dataset(con)
    trained = _industry_ranker(con)
    export_serving_artifacts(con, trained, dset, root / "serving")
    yield con, dset, trained, root / "serving"
    con.close()


def test_features_md_is_generated_from_the_registry():
    out = subprocess.run(
        [sys.executable, "-m", "recsys_assets.ranking.features", "--check"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = features.FEATURES_MD.read_text(encoding="utf-8")
    for f in features.REGISTRY:
        assert f"| `{f.name}`" in text
    sql_files = {p.name for p in (features.FEATURES_MD.parent / "sql").glob("*.sql")}
    assert len(sql_files) > 10
    for name in sql_files - {"vocab_category.sql", "vocab_region.sql", "vocab_industry.sql"}:
        assert f"{name}`" in text, f"features.md does not mention {name}"
    assert tuple(f.name for f in features.REGISTRY) == features.FEATURES
    assert set(features.CATEGORICAL_FEATURES) == {"category_code", "industry_code", "region_code"}


def test_a_new_feature_is_one_registry_entry(tmp_path, monkeypatch, capsys):
    """One Feature line: the dataset computes it, the booster learns it, serving computes it too."""
    extra = features.Feature(
        "price_x_ind_penetration",
        "gp.log_unit_price * coalesce(ip.ind_penetration, 0)",
        "log price times industry penetration",
        "a test feature",
    )
    registry = (*features.REGISTRY, extra)
    monkeypatch.setattr(features, "REGISTRY", registry)
    monkeypatch.setattr(features, "FEATURES", tuple(f.name for f in registry))

    assert features.main(["--check"]) == 1  # features.md lacks the new entry until regenerated
    assert "is stale" in capsys.readouterr().out

    con = make_synthetic_warehouse(tmp_path / "w.duckdb", n_restaurants=200, seed=3)
    dset = ds.build_ranking_dataset(con)
    rows = con.execute(
        "SELECT price_x_ind_penetration, log_unit_price * coalesce(ind_penetration, 0) "
        "FROM rk_candidates"
    ).fetchall()
    assert rows and all(a == pytest.approx(b) for a, b in rows)
    assert any(a > 0 for a, _ in rows)
    trained = train_ranker(con, dset)
    assert trained.booster.feature_name() == list(features.FEATURES)
    export_serving_artifacts(con, trained, dset, tmp_path / "serving")
    server = RankerServer(tmp_path / "serving")
    feats, _, _ = server.features_for(REQUESTS)
    assert (
        "price_x_ind_penetration" in feats.columns
        and feats["price_x_ind_penetration"].notna().all()
    )
    assert server.recommend(REQUESTS).groupby("request_index").size().eq(20).all()
    con.close()


def test_the_model_stores_its_vocabularies(trained_model):
    _, dset, trained, serving = trained_model
    meta = json.loads((serving / META_FILE).read_text(encoding="utf-8"))
    assert meta["industries"] == list(taxonomy.INDUSTRY_CODES) == dset.industries
    assert meta["unknown_industry"] == taxonomy.OTHER
    assert meta["features"] == trained.features
    assert meta["categorical_features"] == ["category_code", "industry_code"]
    assert meta["regions"] == dset.regions and meta["categories"] == dset.categories


def test_inserting_an_industry_does_not_change_served_scores(trained_model, monkeypatch):
    _, dset, trained, serving = trained_model
    # Premise: the booster splits on industry_code, so shifted codes would change its scores.
    gain = dict(
        zip(trained.booster.feature_name(), trained.booster.feature_importance("gain"), strict=True)
    )
    assert gain["industry_code"] > 0
    before = RankerServer(serving).recommend(REQUESTS)

    shifted = (NEW, *taxonomy.INDUSTRY_CODES)
    monkeypatch.setattr(taxonomy, "INDUSTRY_CODES", shifted)
    server = RankerServer(serving)
    after = server.recommend(REQUESTS)
    pd.testing.assert_frame_equal(before, after)

    feats, _, _ = server.features_for(REQUESTS)
    assert (feats["industry_code"] == feats["industry"].map(dset.industries.index)).all()
    # What the position in today's taxonomy would have given the same rows:
    by_position = feats.assign(industry_code=feats["industry"].map(shifted.index))
    assert not np.allclose(
        score_frame(trained.booster, by_position), score_frame(trained.booster, feats)
    )

    # An industry the model never saw gets `other`'s code, as an unrecognised label did in training.
    new, _, _ = server.features_for(pd.DataFrame({"industry": [NEW], "k": [5]}))
    assert len(new) and set(new["industry"]) == {NEW}
    assert set(new["industry_code"]) == {dset.industries.index(taxonomy.OTHER)}


def test_the_gate_rescores_a_model_with_its_own_industry_list(trained_model, tmp_path):
    """A dataset rebuilt after an industry was inserted codes industries differently; the gate
    re-scores an older champion with the list stored in it and gets its original metrics."""
    con, dset, trained, _ = trained_model
    want = score_with_booster(con, trained.booster).metrics
    con2 = _warehouse(tmp_path / "w.duckdb")
    shifted = [NEW, *dset.industries]
    assert ds.build_ranking_dataset(con2, industries=shifted).industries == shifted
    assert score_with_booster(con2, trained.booster, industries=dset.industries).metrics == want
    naive = model_rankings(con2, trained.booster)["score"].to_numpy()
    recoded = model_rankings(con2, trained.booster, industries=dset.industries)["score"].to_numpy()
    assert not np.allclose(naive, recoded)
    con2.close()


def test_an_industry_list_without_other_is_refused(tmp_path):
    con = make_synthetic_warehouse(tmp_path / "w.duckdb", n_restaurants=50, seed=1)
    with pytest.raises(ValueError, match="include 'other'"):
        ds.build_ranking_dataset(con, industries=["chicken", "pizza"])
    con.close()


def test_a_model_logged_before_the_basket_share_tables_is_served_without_them(
    trained_model, tmp_path
):
    """A model whose artefacts predate rk_snap_basket / rk_snap_token_share (and whose meta has no
    share smoothing) still serves: the tables stand in empty, so the share features are those of a
    menu without evidence, while a current model's serving reads the real ones."""
    import shutil

    _, _, _, serving = trained_model
    request = pd.DataFrame({"industry": ["pizza"], "menu": ["치즈볼|감자튀김"], "k": [5]})
    feats, _, _ = RankerServer(serving).features_for(request)
    assert len(feats) and (feats["token_share_log_lift_sum"] != 0).any()

    old = tmp_path / "old"
    shutil.copytree(serving, old)
    for name in ("snap_basket.parquet", "snap_token_share.parquet"):
        (old / name).unlink()
    meta = json.loads((old / META_FILE).read_text(encoding="utf-8"))
    del meta["candidate_params"]["share_a"]
    (old / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    server = RankerServer(old)
    feats, _, _ = server.features_for(request)
    assert len(feats) and (feats["n_known_tokens"] > 0).any()
    assert (feats[["token_share_max", "token_share_log_lift_sum"]] == 0).all().all()
    assert len(server.recommend(request)) == 5


def test_a_model_logged_before_the_menu_word_match_is_served_without_it(trained_model, tmp_path):
    """특치즈볼 contains the known token 치즈볼: a current model's serving counts it as 치즈볼, one
    whose meta predates the match (no contain_min_len) gets the inputs it was trained with."""
    import shutil

    _, _, _, serving = trained_model
    request = pd.DataFrame({"industry": ["chicken"], "menu": ["특치즈볼"], "k": [5]})
    feats, _, _ = RankerServer(serving).features_for(request)
    assert len(feats) and (feats["n_known_tokens"] == 1).all()

    old = tmp_path / "old"
    shutil.copytree(serving, old)
    meta = json.loads((old / META_FILE).read_text(encoding="utf-8"))
    del meta["candidate_params"]["contain_min_len"]
    (old / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    feats, _, _ = RankerServer(old).features_for(request)
    assert len(feats) and (feats["n_known_tokens"] == 0).all()
