"""Ranking metrics against values computed by hand (not by re-running the implementation)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from recsys_assets.ranking import metrics as m

# Truth: b is a grade-2 purchase, d a grade-1 purchase; a and c were not bought.
RANKED = ["a", "b", "c", "d"]
TRUTH = {"b": 2.0, "d": 1.0}


def test_ndcg_by_hand():
    # DCG  = (2^2-1)/log2(3) + (2^1-1)/log2(5) = 1.892789 + 0.430677 = 2.323466
    # IDCG = (2^2-1)/log2(2) + (2^1-1)/log2(3) = 3 + 0.630930 = 3.630930
    assert m.ndcg_at_k(RANKED, TRUTH, 10) == pytest.approx(0.639909, abs=1e-6)
    # Only the first item counts at k=1 and it is not relevant.
    assert m.ndcg_at_k(RANKED, TRUTH, 1) == 0.0
    # Perfect order is 1.
    assert m.ndcg_at_k(["b", "d", "a"], TRUTH, 10) == pytest.approx(1.0)


def test_ideal_includes_products_the_ranking_missed():
    # A ranking that only contains b cannot be perfect: d was bought too. 3 / 3.630930 = 0.826235.
    assert m.ndcg_at_k(["b"], TRUTH, 10) == pytest.approx(0.826235, abs=1e-6)
    assert m.recall_at_k(["b"], TRUTH, 10) == 0.5


def test_recall_map_hit_rate_by_hand():
    assert m.recall_at_k(RANKED, TRUTH, 10) == 1.0
    assert m.recall_at_k(RANKED, TRUTH, 2) == 0.5
    # Hits at ranks 2 and 4: precision 1/2 and 2/4; AP = (0.5 + 0.5) / min(2, 10) = 0.5.
    assert m.average_precision_at_k(RANKED, TRUTH, 10) == pytest.approx(0.5)
    # At k=3 only the hit at rank 2 counts: 0.5 / min(2, 3) = 0.25.
    assert m.average_precision_at_k(RANKED, TRUTH, 3) == pytest.approx(0.25)
    assert m.hit_rate_at_k(RANKED, TRUTH, 1) == 0.0
    assert m.hit_rate_at_k(RANKED, TRUTH, 2) == 1.0
    # A repeated item is not a second hit.
    assert m.average_precision_at_k(["b", "b"], {"b": 1.0, "x": 1.0}, 10) == pytest.approx(0.5)


def test_empty_truth_is_undefined_not_perfect():
    for fn in (m.ndcg_at_k, m.recall_at_k, m.average_precision_at_k, m.hit_rate_at_k):
        assert fn(RANKED, {}, 10) is None
        assert fn(RANKED, {"a": 0.0}, 10) is None  # grade 0 is not a positive
    assert m.query_metrics(RANKED, {}) is None


def test_summary_excludes_and_counts_queries_without_positives():
    rankings = {"q1": RANKED, "q2": ["a", "b"]}  # q3 has positives but no ranking at all
    truth = {"q1": TRUTH, "q2": {}, "q3": {"z": 3.0}}
    s = m.summarize(rankings, truth, ["q1", "q2", "q3"])
    assert s.queries_evaluated == 2
    assert s.queries_without_positives == 1
    # q3 counts as a miss (0), q2 is excluded: mean of 0.639909 and 0.
    assert s.metrics["ndcg_at_10"] == pytest.approx(0.639909 / 2, abs=1e-6)
    assert s.metrics["hit_rate_at_10"] == pytest.approx(0.5)
    assert s.metrics["recall_at_20"] == pytest.approx(0.5)
    assert set(s.per_query["query_id"]) == {"q1", "q3"}
    empty = m.summarize({}, {}, ["q"])
    assert empty.queries_evaluated == 0 and math.isnan(empty.metrics["ndcg_at_10"])


def test_frames_to_rankings_order_by_score_then_id():
    frame = pd.DataFrame(
        {
            "restaurant_id": ["r", "r", "r", "s"],
            "product_id": ["x", "y", "w", "x"],
            "score": [0.1, 0.5, 0.5, 1.0],
        }
    )
    assert m.rankings_from_frame(frame) == {"r": ["w", "y", "x"], "s": ["x"]}
    truth = m.truth_from_frame(
        pd.DataFrame({"restaurant_id": ["r"], "product_id": ["y"], "relevance": [3]})
    )
    assert truth == {"r": {"y": 3.0}}


def test_ndcg_curve_is_monotone_for_recall_like_case():
    curve = m.ndcg_curve({"q": ["a", "b", "c", "d"]}, {"q": {"d": 1.0}}, ["q"], ks=(1, 3, 4))
    assert curve[1] == 0.0 and curve[3] == 0.0
    assert curve[4] == pytest.approx(1 / math.log2(5))


def test_fast_rankings_and_curve_equal_their_definitions_on_random_ties():
    """rankings_from_frame sorts on integer codes and ndcg_curve makes one pass per query; both
    must give exactly what the definitions give (sort by query, -score, item; mean NDCG@k)."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = 4000
    frame = pd.DataFrame(
        {
            "restaurant_id": rng.choice([f"r{i}" for i in range(150)], n),
            "product_id": rng.choice([f"p{i}" for i in range(60)], n),
            "score": rng.integers(0, 6, n) / 3.0,  # many ties
            "rank": rng.integers(1, 9, n),
        }
    )
    by_score = frame.assign(_neg=-frame["score"]).sort_values(
        ["restaurant_id", "_neg", "product_id"], kind="mergesort"
    )
    by_rank = frame.sort_values(["restaurant_id", "rank"], kind="mergesort")
    for ordered, got in (
        (by_score, m.rankings_from_frame(frame)),
        (by_rank, m.rankings_from_frame(frame, score_col=None, rank_col="rank")),
    ):
        expected = {q: g["product_id"].tolist() for q, g in ordered.groupby("restaurant_id")}
        assert list(got) == sorted(expected) and got == expected

    rankings = m.rankings_from_frame(frame)
    truth = {
        q: {f"p{i}": float(rng.integers(0, 4)) for i in rng.choice(60, rng.integers(0, 12))}
        for q in rankings
    }
    queries = [*rankings, "never-ranked"]
    ks = (1, 3, 10, 40, 80)
    curve = m.ndcg_curve(rankings, truth, queries, ks)
    for k in ks:
        vals = [m.ndcg_at_k(rankings.get(q, []), truth.get(q, {}), k) for q in queries]
        assert curve[k] == float(np.mean([v for v in vals if v is not None]))


def test_summarize_frame_equals_the_per_query_metrics_exactly():
    """The vectorised path (`summarize_frame`) gives the floats of `summarize` + `ndcg_curve` over
    `rankings_from_frame`: ties, an item listed twice, a ranking longer than the depth, a ranked
    query outside the cohort, a cohort query never ranked or without positives, a duplicate
    cohort query, truth rows of relevance 0 and a truth key given twice (the last one counts)."""
    import numpy as np

    rng = np.random.default_rng(11)
    n = 6000
    frame = pd.DataFrame(
        {
            "restaurant_id": rng.choice([f"r{i}" for i in range(120)], n),
            "product_id": rng.choice([f"p{i}" for i in range(90)], n),
            "score": rng.integers(0, 8, n) / 7.0,
            "rank": rng.integers(1, 70, n),
        }
    )
    truth_frame = pd.DataFrame(
        {
            "restaurant_id": rng.choice([f"r{i}" for i in range(130)], 2500),
            "product_id": rng.choice([f"p{i}" for i in range(100)], 2500),
            "relevance": rng.integers(0, 5, 2500).astype(float),
        }
    )
    queries = [f"r{i}" for i in range(5, 135)] + ["r7", "nobody"]  # r0-r4 ranked, not in cohort
    ks = (1, 3, 5, 10, 20, 30, 50)
    truth = m.truth_from_frame(truth_frame)
    coded = m.coded_truth(truth_frame, queries, max(ks))
    for cols in ({}, {"score_col": None, "rank_col": "rank"}):
        want = m.summarize(m.rankings_from_frame(frame, **cols), truth, queries)
        want_curve = m.ndcg_curve(m.rankings_from_frame(frame, **cols), truth, queries, ks)
        got, got_curve = m.summarize_frame(frame, coded, ks, **cols)
        assert got.metrics == want.metrics and got_curve == want_curve
        assert (got.queries_evaluated, got.queries_without_positives) == (
            want.queries_evaluated,
            want.queries_without_positives,
        )
        pd.testing.assert_frame_equal(got.per_query, want.per_query, check_exact=True)
    assert want.queries_without_positives > 0 and want.metrics["ndcg_at_10"] > 0
    empty, _ = m.summarize_frame(frame.iloc[:0], coded, ks)
    assert empty.metrics == m.summarize({}, truth, queries).metrics
