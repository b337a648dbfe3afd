"""Evaluate the ranker and its baselines on the same cold-start holdout, with the same metric code.

Baselines (what we would ship without a model):
- global popularity: products ranked by the share of all restaurants that bought them (as of cutoff);
- industry popularity: `industry_top_products` as of the cutoff (keyword label + popularity),
  padded with global popularity beyond its list so every method ranks the same depth;
- oracle (when the generator's ground truth is available): the true expected first-30-day quantity,
  an upper bound no model can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from recsys_assets.ranking.dataset import (
    RankingDataset,
    industry_coder,
    load_queries,
    load_split,
    load_truth,
)
from recsys_assets.ranking.metrics import (
    METRIC_NAMES,
    MetricSummary,
    ndcg_curve,
    rankings_from_frame,
    summarize,
    truth_from_frame,
)
from recsys_assets.ranking.train import score_frame

BASELINE_DEPTH = 50
CURVE_KS = (1, 3, 5, 10, 20, 30, 50)


@dataclass
class Evaluation:
    split: str
    metrics: dict[str, float]  # the model
    baselines: dict[str, dict[str, float]]  # industry_popularity, global_popularity, oracle?
    queries: int
    queries_evaluated: int
    queries_without_positives: int
    candidate_recall: float
    per_industry: pd.DataFrame
    ndcg_curve: pd.DataFrame
    model_rankings: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def flat_metrics(self) -> dict[str, float]:
        """MLflow metric names: model metrics bare, baselines prefixed (industry_popularity_ndcg_at_10)."""
        out = dict(self.metrics)
        for name, m in self.baselines.items():
            out.update({f"{name}_{k}": v for k, v in m.items()})
        out["candidate_recall"] = self.candidate_recall
        out["test_queries_evaluated"] = float(self.queries_evaluated)
        out["test_queries_without_positives"] = float(self.queries_without_positives)
        return out

    @property
    def margin_vs_industry_popularity(self) -> float:
        return self.metrics["ndcg_at_10"] - self.baselines["industry_popularity"]["ndcg_at_10"]


def model_rankings(
    con: duckdb.DuckDBPyConnection,
    booster,
    split: str = "test",
    industries: list[str] | None = None,
) -> pd.DataFrame:
    """Score every candidate of `split` with `booster`: DataFrame(restaurant_id, product_id, score).

    `industries`: the industry list the booster was trained with, when it may differ from the
    dataset's (a champion trained before an industry was added); industry_code is re-derived from
    the industry names with it, as serving does.
    """
    frame = load_split(con, split)
    if industries is not None:
        frame["industry_code"] = frame["industry"].map(industry_coder(industries))
    return pd.DataFrame(
        {
            "restaurant_id": frame["restaurant_id"],
            "product_id": frame["product_id"],
            "score": score_frame(booster, frame),
        }
    )


def score_with_booster(
    con: duckdb.DuckDBPyConnection,
    booster,
    split: str = "test",
    industries: list[str] | None = None,
) -> MetricSummary:
    """Metrics of any booster on the current holdout (the promotion gate re-scores the champion so)."""
    queries = load_queries(con, split)["restaurant_id"].astype(str).tolist()
    truth = truth_from_frame(load_truth(con, split))
    ranked = model_rankings(con, booster, split, industries)
    return summarize(rankings_from_frame(ranked), truth, queries)


def _popularity_rankings(
    con: duckdb.DuckDBPyConnection, dataset: RankingDataset, split: str
) -> dict:
    """Both popularity baselines, read from the cutoff snapshot.

    The industry list is `industry_top_products` as of the cutoff: rk_snap_ind_prod holds the same
    statistics (the same SQL) and `ind_rank` is the same order, so it is not rebuilt here.
    """
    params = {"s": dataset.cutoff, "k": BASELINE_DEPTH}
    glob = [
        r[0]
        for r in con.execute(
            "SELECT product_id FROM rk_snap_prod WHERE snapshot = $s AND global_rank <= $k ORDER BY global_rank",
            params,
        ).fetchall()
    ]
    top: dict[str, list[str]] = {}
    for ind, pid in con.execute(
        "SELECT industry, product_id FROM rk_snap_ind_prod WHERE snapshot = $s AND ind_rank <= $k "
        "ORDER BY industry, ind_rank",
        params,
    ).fetchall():
        top.setdefault(ind, []).append(pid)
    qs = load_queries(con, split)
    ind_rank, glob_rank = {}, {}
    for rid, ind in zip(qs["restaurant_id"].astype(str), qs["industry"], strict=True):
        lst = list(top.get(ind, []))
        lst += [p for p in glob if p not in set(lst)]
        ind_rank[rid] = lst[:BASELINE_DEPTH]
        glob_rank[rid] = glob
    return {"industry_popularity": ind_rank, "global_popularity": glob_rank}


def _oracle_rankings(
    ground_truth_dir: str | Path, restaurant_ids: list[str]
) -> dict[str, list[str]]:
    from recsys_assets.sample_data import oracle_scores

    scores = oracle_scores(ground_truth_dir, restaurant_ids)
    scores = scores[scores["score"] > 0]
    ranked = rankings_from_frame(scores)
    return {q: r[:BASELINE_DEPTH] for q, r in ranked.items()}


def evaluate(
    con: duckdb.DuckDBPyConnection,
    ranker,
    dataset: RankingDataset,
    ground_truth_dir: str | Path | None = None,
    split: str = "test",
) -> Evaluation:
    """Model (a TrainedRanker or a booster) vs baselines vs oracle on `split`, plus per industry."""
    booster = getattr(ranker, "booster", ranker)
    qs = load_queries(con, split)
    queries = qs["restaurant_id"].astype(str).tolist()
    truth = truth_from_frame(load_truth(con, split))
    scored = model_rankings(con, booster, split)
    methods: dict[str, dict[str, list[str]]] = {"model": rankings_from_frame(scored)}
    methods.update(_popularity_rankings(con, dataset, split))
    if ground_truth_dir is not None:
        methods["oracle"] = _oracle_rankings(ground_truth_dir, queries)
    summaries = {name: summarize(r, truth, queries) for name, r in methods.items()}

    industry_of = dict(zip(qs["restaurant_id"].astype(str), qs["industry"], strict=True))
    per_ind: pd.DataFrame | None = None
    for name, s in summaries.items():
        pq = s.per_query.assign(industry=s.per_query["query_id"].map(industry_of))
        agg = pq.groupby("industry").agg(
            **{
                f"{name}_ndcg_at_10": ("ndcg_at_10", "mean"),
                f"{name}_recall_at_10": ("recall_at_10", "mean"),
            }
        )
        if per_ind is None:
            per_ind = pq.groupby("industry").size().rename("queries").to_frame().join(agg)
        else:
            per_ind = per_ind.join(agg)
    if per_ind is None:  # unreachable: the model and the baselines are always summarised
        raise ValueError("no ranking method to evaluate")
    per_ind = per_ind.reset_index().sort_values("queries", ascending=False, kind="mergesort")

    curve = pd.DataFrame({"k": list(CURVE_KS)})
    for name, r in methods.items():
        c = ndcg_curve(r, truth, queries, CURVE_KS)
        curve[name] = [c[k] for k in CURVE_KS]

    model = summaries["model"]
    return Evaluation(
        split=split,
        metrics=model.metrics,
        baselines={n: s.metrics for n, s in summaries.items() if n != "model"},
        queries=len(queries),
        queries_evaluated=model.queries_evaluated,
        queries_without_positives=model.queries_without_positives,
        candidate_recall=dataset.candidate_recall.get(split, float("nan")),
        per_industry=per_ind,
        ndcg_curve=curve,
        model_rankings=scored,
    )


def format_report(ev: Evaluation) -> str:
    """A plain-text table of model vs baselines (for logs and the benchmark)."""
    rows = [("model", ev.metrics), *ev.baselines.items()]
    head = f"{'method':<22}" + "".join(f"{m:>16}" for m in METRIC_NAMES)
    lines = [head]
    for name, m in rows:
        lines.append(
            f"{name:<22}" + "".join(f"{m.get(k, float('nan')):>16.4f}" for k in METRIC_NAMES)
        )
    lines.append(
        f"queries={ev.queries} evaluated={ev.queries_evaluated} "
        f"without_positives={ev.queries_without_positives} candidate_recall={ev.candidate_recall:.3f}"
    )
    return "\n".join(lines)
