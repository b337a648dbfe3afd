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


# The SQL before the per-query baselines were made cheaper (oracle): menu_token_association's
# UNION + LEFT JOIN of the lifts, menu_knn's row_number window, the rank's arg_min over lists.
_OLD_PRIMARY = {
    "menu_token_association": """
            WITH lift AS (
                SELECT qt.restaurant_id, tp.product_id, max(ln(tp.lift)) AS ll
                FROM bl_q_tok qt JOIN bl_token_prod tp USING (token) GROUP BY ALL
            ),
            cand AS (
                SELECT q.restaurant_id, q.industry, i.product_id FROM bl_q q
                JOIN bl_ind i USING (industry) WHERE i.new_rank <= $token_prior_depth
                UNION
                SELECT q.restaurant_id, q.industry, l.product_id FROM bl_q q
                JOIN lift l USING (restaurant_id)
            )
            SELECT c.restaurant_id, c.product_id,
                   ln(coalesce(i.ind_new_penetration, 0.5 * p.global_new_penetration, 0) + 1e-6)
                   + coalesce(l.ll, 0) AS key
            FROM cand c
            LEFT JOIN bl_ind i ON i.industry = c.industry AND i.product_id = c.product_id
            LEFT JOIN bl_prod p ON p.product_id = c.product_id
            LEFT JOIN lift l ON l.restaurant_id = c.restaurant_id AND l.product_id = c.product_id
            """,
    "menu_knn": """
            WITH idf AS (SELECT DISTINCT token, idf FROM bl_knn_tok),
            qw AS (
                SELECT qt.restaurant_id, qt.token,
                       idf.idf / sqrt(sum(idf.idf * idf.idf) OVER (PARTITION BY qt.restaurant_id)) AS w
                FROM bl_q_tok qt JOIN idf USING (token)
            ),
            sim AS (
                SELECT qw.restaurant_id, k.restaurant_id AS neighbour,
                       round(sum(qw.w * k.w), 9) AS sim
                FROM qw JOIN bl_knn_tok k USING (token) GROUP BY ALL
            ),
            top AS (
                SELECT * FROM sim QUALIFY row_number() OVER (
                    PARTITION BY restaurant_id ORDER BY sim DESC, neighbour) <= $neighbours
            )
            SELECT t.restaurant_id, b.product_id, round(sum(t.sim), 9) AS key
            FROM top t JOIN bl_knn_buy b ON b.restaurant_id = t.neighbour GROUP BY ALL
            """,
}
_OLD_RANK = """-- Rank one baseline for every row of bl_q (restaurant_id, industry; menu tokens in bl_q_tok). The
-- baseline's own list (its primary query: restaurant_id, product_id, key; higher key first) comes first,
-- then, to the same depth for every method, its padding: industry first-window popularity,
-- industry popularity, global popularity (each only where the baseline pads with it; global always).
WITH prim AS (
{{primary}}
),
allc AS (
    SELECT restaurant_id, product_id, 0 AS prio, CAST(key AS DOUBLE) AS key FROM prim
    UNION ALL
    SELECT q.restaurant_id, i.product_id, 1, -i.new_rank FROM bl_q q JOIN bl_ind i USING (industry)
    WHERE $pad_new AND i.new_rank <= $depth
    UNION ALL
    SELECT q.restaurant_id, i.product_id, 2, -i.ind_rank FROM bl_q q JOIN bl_ind i USING (industry)
    WHERE $pad_ind AND i.ind_rank <= $depth
    UNION ALL
    SELECT q.restaurant_id, p.product_id, 3, -p.global_rank FROM bl_q q CROSS JOIN bl_prod p
    WHERE p.global_rank <= $depth
),
dedup AS (  -- each product once: from its first list (prio), with that list's best key
    SELECT restaurant_id, product_id, min(prio) AS prio,
           arg_min(key, [CAST(prio AS DOUBLE), -key]) AS key
    FROM allc GROUP BY restaurant_id, product_id
),
ranked AS (
    SELECT restaurant_id, product_id,
           CAST(row_number() OVER (PARTITION BY restaurant_id ORDER BY prio, key DESC, product_id)
                AS INTEGER) AS rank
    FROM dedup
)
SELECT restaurant_id, product_id, rank FROM ranked WHERE rank <= $depth
ORDER BY restaurant_id, rank
"""


def test_baselines_rank_as_the_former_sql(generated, monkeypatch):
    """Every baseline's frame (rows, ranks, order) equals the former SQL's, for the holdout's
    queries with a few awkward ones (no industry, an unknown one, no tokens)."""
    import dataclasses

    from recsys_assets.ranking import sql

    con, dset, _trained, _gt = generated
    scorer = bl.BaselineScorer(bl.baseline_tables(con, dset.cutoff), threads=2)
    qs = con.execute("SELECT restaurant_id, industry FROM rk_queries").df()
    qs["industry"] = qs["industry"].astype(object)
    qs.loc[:2, "industry"] = [None, "no_such_industry", None]
    toks = con.execute("SELECT restaurant_id, token FROM rk_menu_tokens").df()
    toks = toks[toks["restaurant_id"] != qs["restaurant_id"].iloc[5]]
    got = {n: scorer.rank(n, qs, toks, bl.DEPTH) for n in bl.BASELINES}
    monkeypatch.setattr(bl, "KNN_NEIGHBOURS", 3)  # more neighbours tied at the cut
    got["menu_knn_3"] = scorer.rank("menu_knn", qs, toks, bl.DEPTH)
    load = sql.load
    monkeypatch.setattr(
        sql,
        "load",
        lambda name, frags=None: (
            _OLD_RANK.replace("{{primary}}", frags["primary"])
            if name == "baseline_rank"
            else load(name, frags)
        ),
    )
    for n, text in _OLD_PRIMARY.items():
        monkeypatch.setitem(
            bl.BASELINES, n, dataclasses.replace(bl.BASELINES[n], primary=text, own=None)
        )
    want = {"menu_knn_3": scorer.rank("menu_knn", qs, toks, bl.DEPTH)}
    monkeypatch.setattr(bl, "KNN_NEIGHBOURS", 50)
    want.update({n: scorer.rank(n, qs, toks, bl.DEPTH) for n in bl.BASELINES})
    for n, frame in want.items():
        assert len(frame) > len(qs) * 10, n
        pd.testing.assert_frame_equal(got[n], frame, check_exact=True, obj=n)
