"""`evaluate` scores every method on whole frames (`metrics.summarize_frame`) and streams the split
through the booster in batches; its Evaluation must be the one the per-query code gave.

The oracle below is the former `evaluate`, kept verbatim in spirit: the whole split in pandas,
`score_frame`, per-query lists (`rankings_from_frame`) and per-query metrics (`summarize`,
`ndcg_curve`). Real generator (with its ground truth, for the oracle ranking), real ingest, the
offline labeler, the real dataset build and a real (small) LightGBM ranker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_assets.ranking import baselines as bl
from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import evaluate as ev_mod
from recsys_assets.ranking import metrics as m
from recsys_assets.ranking.train import score_frame, train_ranker
from tests.offline_warehouse import offline_labeled_warehouse


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    con, files = offline_labeled_warehouse(tmp_path_factory.mktemp("evaluate"), 5, 800)
    dset = ds.build_ranking_dataset(con)
    trained = train_ranker(con, dset, {"num_boost_round": 40, "best_iteration_window": 1})
    yield con, dset, trained, files.ground_truth
    con.close()


def _reference_evaluate(con, booster, dataset, ground_truth_dir, industries=None) -> dict:
    """The former evaluate(): per-query lists and per-query metrics (the definitions)."""
    from recsys_assets.sample_data import oracle_scores

    qs = ds.load_queries(con, "test")
    queries = qs["restaurant_id"].astype(str).tolist()
    truth = m.truth_from_frame(ds.load_truth(con, "test"))
    frame = ds.load_split(con, "test")
    if industries is not None:
        frame["industry_code"] = frame["industry"].map(ds.industry_coder(industries))
    scored = pd.DataFrame(
        {
            "restaurant_id": frame["restaurant_id"],
            "product_id": frame["product_id"],
            "score": score_frame(booster, frame),
        }
    )
    methods = {"model": m.rankings_from_frame(scored)}
    for name, f in bl.holdout_rankings(con, dataset, "test", bl.DEPTH).items():
        methods[name] = m.rankings_from_frame(f, score_col=None, rank_col="rank")
    scores = oracle_scores(ground_truth_dir, queries)
    oracle = m.rankings_from_frame(scores[scores["score"] > 0])
    methods["oracle"] = {q: r[: bl.DEPTH] for q, r in oracle.items()}
    summaries = {name: m.summarize(r, truth, queries) for name, r in methods.items()}
    curves = {n: m.ndcg_curve(r, truth, queries, ev_mod.CURVE_KS) for n, r in methods.items()}
    return {
        "summaries": summaries,
        "curves": curves,
        "ratio_ci": ev_mod._ratio_cis(summaries),
    }


@pytest.mark.parametrize(("recode", "compiled"), [(False, False), (True, True)])
def test_evaluation_equals_the_per_query_definitions(generated, recode, compiled, tmp_path):
    con, dset, trained, gt = generated
    industries = list(dset.industries) if recode else None
    cache = tmp_path / "compiled" if compiled else None
    got = ev_mod.evaluate(
        con, trained, dset, ground_truth_dir=gt, industries=industries, compiled_cache=cache
    )
    want = _reference_evaluate(con, trained.booster, dset, gt, industries)
    summaries = want["summaries"]
    assert got.metrics == summaries["model"].metrics
    assert got.baselines == {n: s.metrics for n, s in summaries.items() if n != "model"}
    assert set(got.baselines) == {*bl.BASELINES, "oracle"}
    assert got.ratio_ci == want["ratio_ci"]
    assert got.queries_evaluated == summaries["model"].queries_evaluated > 50
    assert got.queries_without_positives == summaries["model"].queries_without_positives
    for name, curve in want["curves"].items():
        assert got.ndcg_curve[name].tolist() == [curve[k] for k in ev_mod.CURVE_KS], name
    # The numbers are not degenerate: the methods differ and the oracle is the ceiling.
    ndcg = {n: v["ndcg_at_10"] for n, v in got.baselines.items()}
    assert len(set(ndcg.values())) == len(ndcg)
    assert max(got.metrics["ndcg_at_10"], *ndcg.values()) == ndcg["oracle"]


def test_model_rankings_stream_the_split_in_batches(generated, monkeypatch):
    """Batches smaller than the split give the rows and scores of one pass over it."""
    con, _dset, trained, _gt = generated
    whole = ev_mod.model_rankings(con, trained.booster)
    monkeypatch.setattr(ev_mod, "_SCORE_ROWS", 97)
    batched = ev_mod.model_rankings(con, trained.booster)
    pd.testing.assert_frame_equal(batched, whole, check_exact=True)
    frame = ds.load_split(con, "test")
    assert len(whole) == len(frame) > 97 * 3
    assert np.array_equal(whole["score"].to_numpy(), score_frame(trained.booster, frame))
    assert whole["product_id"].tolist() == frame["product_id"].tolist()


def test_per_industry_baselines_equal_one_ranking_per_query(generated, monkeypatch):
    """Ranked once per industry and copied: the same rows, ranks and order as the SQL ranking
    every query (queries out of id order, an unknown industry, missing industries)."""
    import dataclasses

    con, dset, _trained, _gt = generated
    scorer = bl.BaselineScorer(bl.baseline_tables(con, dset.cutoff), threads=2)
    qs = con.execute("SELECT restaurant_id, industry FROM rk_queries WHERE split = 'test'").df()
    qs = qs.sample(frac=1.0, random_state=3).reset_index(drop=True)
    qs["industry"] = qs["industry"].astype(object)
    qs.loc[:4, "industry"] = [None, np.nan, "no_such_industry", None, pd.NA]
    toks = con.execute("SELECT restaurant_id, token FROM rk_menu_tokens").df()
    per_industry = [n for n, b in bl.BASELINES.items() if b.per_industry]
    assert len(per_industry) == 3 and qs["industry"].nunique() > 3
    got = {n: scorer.rank(n, qs, toks, bl.DEPTH) for n in per_industry}
    for n in per_industry:
        monkeypatch.setitem(
            bl.BASELINES, n, dataclasses.replace(bl.BASELINES[n], per_industry=False)
        )
    for n in per_industry:
        want = scorer.rank(n, qs, toks, bl.DEPTH)
        assert len(want) == len(qs) * bl.DEPTH
        pd.testing.assert_frame_equal(got[n], want, check_exact=True)


def test_the_compiled_booster_scores_and_is_the_one_serving_compiles(
    generated, tmp_path, monkeypatch
):
    """With a cache, the split is scored by the compiled booster (checked against LightGBM on the
    first batch, the same scores), compiled from the bytes the serving artefact holds: the
    `recommendations` step finds that compile in the same cache."""
    from recsys_assets.ranking import compiled
    from recsys_assets.ranking.pyfunc_model import export_serving_artifacts

    con, dset, trained, _gt = generated
    verdicts: list[bool] = []
    real_checked = compiled.checked
    monkeypatch.setattr(
        compiled, "checked", lambda *a: verdicts.append(real_checked(*a)) or verdicts[-1]
    )
    cache = tmp_path / "compiled"
    fast = ev_mod.model_rankings(con, trained.booster, compiled_cache=cache)
    assert verdicts == [True]  # used, after one check
    pd.testing.assert_frame_equal(
        fast, ev_mod.model_rankings(con, trained.booster), check_exact=True
    )
    served = export_serving_artifacts(con, trained, dset, tmp_path / "artefacts")["booster"]
    assert [p.name for p in cache.iterdir()] == [compiled._cache_file(Path(served), cache).name]
