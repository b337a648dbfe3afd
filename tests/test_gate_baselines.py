"""The baselines, the gate that serves whichever is best, and the registry's stable identity.

Real DuckDB (the synthetic warehouse of test_ranking_dataset, where purchases follow industry and
menu items) and a real MLflow sqlite store per test. A ranker trained on one popularity feature
cannot beat the menu-aware baselines, so the gate must serve a baseline; the full ranker beats them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from recsys_assets import taxonomy
from recsys_assets.config import load_settings
from recsys_assets.ranking import baselines as bl
from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import recommend as rec
from recsys_assets.ranking import registry as reg
from recsys_assets.ranking import sql
from recsys_assets.ranking.evaluate import SCORING_CALLS, evaluate, paired_bootstrap_ratio
from recsys_assets.ranking.pyfunc_model import OUTPUT_COLUMNS, RankerServer
from recsys_assets.ranking.train import train_ranker
from tests.test_ranking_dataset import make_synthetic_warehouse
from tests.test_ranking_registry import _booster_on

_ORIGINAL_URI = os.environ.get("MLFLOW_TRACKING_URI")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("gate") / "w.duckdb"
    con = make_synthetic_warehouse(path, n_restaurants=300, seed=7)
    dset = ds.build_ranking_dataset(con)
    train = ds.load_split(con, "train")
    weak = _booster_on(train, ["global_penetration"], train["relevance"].to_numpy())
    good = train_ranker(con, dset)
    yield con, dset, good, weak
    con.close()
    mlflow.set_tracking_uri(_ORIGINAL_URI)
    mlflow.set_registry_uri(_ORIGINAL_URI)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    for var in ("RECSYS_PROMOTION_MARGIN", "RECSYS_NDCG_FLOOR", "RECSYS_LABELER", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return load_settings()


def _log(con, trained, dset, settings):
    ev = evaluate(con, trained, dset)
    return reg.log_to_mlflow(con, trained, ev, dset, settings), ev


def test_every_baseline_is_scored_with_a_paired_ci(world):
    con, dset, good, _weak = world
    ev = evaluate(con, good, dset)
    assert set(bl.BASELINES) <= set(ev.baselines) and set(bl.BASELINES) <= set(ev.ratio_ci)
    for name, ci in ev.ratio_ci.items():
        expected = ev.metrics["ndcg_at_10"] / ev.baselines[name]["ndcg_at_10"]
        assert ci["ratio"] == pytest.approx(expected)
        assert ci["ci_low"] < ci["ratio"] < ci["ci_high"], name
    flat = ev.flat_metrics()
    assert "ndcg_ratio_vs_menu_knn_ci_low" in flat and "menu_knn_ndcg_at_10" in flat
    # Menus drive purchases in this world: the menu-aware baselines beat industry popularity.
    ndcg = {n: m["ndcg_at_10"] for n, m in ev.baselines.items()}
    assert ndcg["menu_knn"] > ndcg["industry_popularity"] > ndcg["global_popularity"]
    assert ev.strongest_baseline == max(bl.BASELINES, key=lambda n: ndcg[n])


def test_paired_bootstrap_ratio():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, 400)
    better = paired_bootstrap_ratio(base * 1.1, base)
    assert better["ratio"] == pytest.approx(1.1) and better["ci_low"] > 1.0
    noisy = paired_bootstrap_ratio(base + rng.normal(0, 0.2, 400), base)
    assert noisy["ci_low"] < 1.0 < noisy["ci_high"]


def test_baseline_wins_is_registered_and_served(world, home, monkeypatch):
    """A ranker that does not beat the strongest baseline: that baseline becomes champion as a
    pyfunc, and `recsys recommend` (a real subprocess) and the batch recommendations serve its list."""
    con, dset, _good, weak = world
    logged, ev = _log(con, weak, dset, home)
    best = ev.strongest_baseline
    d = reg.promote_if_better(con, logged.version, dset, home, evaluation=ev)
    assert d.promoted and d.candidate_kind == "baseline" and d.champion_kind == "baseline"
    assert d.champion_version == d.candidate_version != logged.version
    assert "does not significantly beat" in d.reason and best in d.reason
    assert d.metrics["ratio_ci_low"] <= 1.0
    client = reg.configure_mlflow(home)
    served = client.get_model_version(reg.MODEL_NAME, d.champion_version)
    assert served.tags["kind"] == "baseline" and served.tags["baseline"] == best
    assert served.tags["promotion_decision"] == "promoted"
    rejected = client.get_model_version(reg.MODEL_NAME, logged.version)
    assert rejected.tags["promotion_decision"] == "rejected"
    assert rejected.tags["promotion_reason"] == d.reason and d.reason in rejected.description

    # Same interface as the ranker pyfunc.
    model = mlflow.pyfunc.load_model(f"models:/{reg.MODEL_NAME}@champion")
    out = model.predict(
        pd.DataFrame({"name": ["바삭치킨"], "menu": ["후라이드치킨|치즈볼"], "k": [5]})
    )
    assert list(out.columns) == list(OUTPUT_COLUMNS) and out["rank"].tolist() == [1, 2, 3, 4, 5]
    assert out["industry"].iloc[0] == "chicken"  # labeled from name + menu

    # The CLI serves the baseline's list, as ranked from the serving snapshot's tables.
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    res = subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", "recommend", "--name", "바삭치킨 역삼점",
         "--menu", "후라이드치킨|치즈볼", "--industry", "chicken", "-k", "7", "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["model_version"] == d.champion_version
    scorer = bl.BaselineScorer(bl.baseline_tables(con, dset.serving_snapshot))
    q = pd.DataFrame({"restaurant_id": ["x"], "industry": ["chicken"]})
    toks = pd.DataFrame({"restaurant_id": "x", "token": ds.menu_tokens("후라이드치킨|치즈볼")})
    expected = scorer.rank(best, q, toks, depth=7)["product_id"].tolist()
    assert [p["product_id"] for p in got["products"]] == expected
    # A list has no model score: 1 / rank, shown as it is (not through the ranker's logistic).
    assert [p["score"] for p in got["products"]] == [round(1 / r, 4) for r in range(1, 8)]

    # The recommendations asset's batch path serves the baseline champion too, in blocks, with
    # the lists the registered pyfunc answers for the same warehouse rows.
    monkeypatch.setattr(rec, "BASELINE_RESTAURANTS_PER_BATCH", 70)  # several blocks, one ragged
    version = rec.write_recommendations(con, "recs_baseline", k=5, settings=home)
    try:
        written = con.execute(
            "SELECT restaurant_id, rank, product_id, score, model_version FROM recs_baseline "
            "ORDER BY restaurant_id, rank"
        ).df()
    finally:
        con.execute("DROP TABLE recs_baseline")
    assert version == d.champion_version and set(written["model_version"]) == {version}
    n_rest = con.execute("SELECT count(*) FROM restaurants").fetchall()[0][0]
    assert written["restaurant_id"].nunique() == n_rest > 70
    reqs = sql.run(
        con, "restaurant_requests", {"ids": None}, {"latest_labels": sql.load("latest_labels")}
    ).df()
    reqs["k"] = 5
    ref = model.predict(reqs).sort_values(["restaurant_id", "rank"])
    pd.testing.assert_frame_equal(
        written[["restaurant_id", "rank", "product_id", "score"]].reset_index(drop=True),
        ref[["restaurant_id", "rank", "product_id", "score"]].reset_index(drop=True),
        check_dtype=False,
    )

    # Deciding again on the same data registers no second copy of the baseline.
    n_versions = len(client.search_model_versions(f"name = '{reg.MODEL_NAME}'"))
    again = reg.promote_if_better(con, logged.version, dset, home, evaluation=ev)
    assert again.candidate_version == d.champion_version and not again.promoted
    assert len(client.search_model_versions(f"name = '{reg.MODEL_NAME}'")) == n_versions
    assert reg.aliases(home)["champion"] == d.champion_version


def test_ranker_wins_and_the_champion_is_scored_once_per_holdout(world, home):
    con, dset, good, _weak = world
    v1, ev1 = _log(con, good, dset, home)
    d1 = reg.promote_if_better(con, v1.version, dset, home, evaluation=ev1)
    assert d1.promoted and d1.candidate_kind == "ranker" and d1.champion_version == v1.version
    assert d1.metrics["ratio_ci_low"] > 1.0
    assert "significantly beats the strongest baseline" in d1.reason

    # A new challenger: its numbers come in, only the champion is scored (once) ...
    v2, ev2 = _log(con, good, dset, home)
    SCORING_CALLS.clear()
    d2 = reg.promote_if_better(con, v2.version, dset, home, evaluation=ev2)
    assert SCORING_CALLS["booster_scored"] == 1
    assert d2.metrics["champion_score_cached"] == 0.0 and not d2.promoted  # equal, not better
    assert d2.metrics["champion_ndcg_at_10"] == pytest.approx(ev1.metrics["ndcg_at_10"])
    # ... and the next gate on the same holdout reads the cached score.
    v3, ev3 = _log(con, good, dset, home)
    SCORING_CALLS.clear()
    d3 = reg.promote_if_better(con, v3.version, dset, home, evaluation=ev3)
    assert not SCORING_CALLS and d3.metrics["champion_score_cached"] == 1.0
    assert "cached score" in d3.reason and reg.aliases(home)["champion"] == v1.version


def test_new_industry_does_not_shift_a_registered_models_inputs(world, home, monkeypatch):
    con, dset, good, _weak = world
    v, _ev = _log(con, good, dset, home)
    client = reg.configure_mlflow(home)
    meta = mlflow.models.get_model_info(f"models:/{reg.MODEL_NAME}/{v.version}").metadata
    assert meta["industries"] == list(dset.industries) and meta["features"] == list(good.features)
    assert "n_industry_candidates" in meta["candidate_recipe"]
    local = mlflow.artifacts.download_artifacts(f"models:/{reg.MODEL_NAME}/{v.version}")
    [serving] = {p.parent for p in Path(local).rglob("booster.txt")}
    request = pd.DataFrame({"industry": ["chicken", "cafe_dessert"], "menu": ["", ""], "k": [5, 5]})
    before = RankerServer(serving).features_for(request)[1]["industry_code"].tolist()
    # A new industry inserted at the front of the taxonomy moves every position by one ...
    monkeypatch.setattr(taxonomy, "INDUSTRY_CODES", ("new_kind", *taxonomy.INDUSTRY_CODES))
    after = RankerServer(serving).features_for(request)[1]["industry_code"].tolist()
    # ... but the registered model still gets the codes it was trained with.
    assert (
        after == before == [dset.industries.index("chicken"), dset.industries.index("cafe_dessert")]
    )
    assert client.get_model_version(reg.MODEL_NAME, v.version).tags["model_digest"]


def test_data_hash_ignores_when_labels_were_written(world):
    con, _dset, _good, _weak = world
    h = ds.input_snapshot_hash(con)
    con.execute("UPDATE restaurant_industry SET labeled_at = labeled_at + INTERVAL 1 DAY")
    assert ds.input_snapshot_hash(con) == h  # relabeled, same labels: same data
    rid, old = con.execute(
        "SELECT restaurant_id, industry FROM restaurant_industry WHERE industry <> 'other' "
        "ORDER BY restaurant_id LIMIT 1"
    ).fetchone()
    con.execute("UPDATE restaurant_industry SET industry = 'other' WHERE restaurant_id = ?", [rid])
    try:
        assert ds.input_snapshot_hash(con) != h  # a label changed: different data
    finally:
        con.execute(
            "UPDATE restaurant_industry SET industry = ? WHERE restaurant_id = ?", [old, rid]
        )
        con.execute("UPDATE restaurant_industry SET labeled_at = labeled_at - INTERVAL 1 DAY")
