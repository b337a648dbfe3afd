"""Evaluate the ranker and its baselines on the same cold-start holdout, with the same metric code.

Baselines (what we would ship without a model): every entry of `baselines.BASELINES` (global and
industry popularity, industry first-30-day popularity, the menu-token association list, a menu-text
kNN), ranked by the same code that serves them, plus the oracle when the generator's ground truth is
available (the true expected first-30-day quantity, an upper bound no model can reach).

The model is compared with each baseline by the ratio of mean NDCG@10 with a paired bootstrap 95 %
CI over the holdout's restaurants (`ratio_ci`): the gate serves the ranker only when the lower bound
against the strongest baseline is above 1.

`SCORING_CALLS` counts how often a booster scored a split and the test split was loaded, so a test
can assert that a rebuild scores the challenger once.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from recsys_assets.ranking import baselines as bl
from recsys_assets.ranking.dataset import (
    RankingDataset,
    industry_coder,
    load_queries,
    load_truth,
)
from recsys_assets.ranking.metrics import (
    METRIC_NAMES,
    MetricSummary,
    coded_truth,
    summarize_frame,
)

BASELINE_DEPTH = bl.DEPTH
CURVE_KS = (1, 3, 5, 10, 20, 30, 50)
BOOTSTRAP_SAMPLES = 1000
NOT_BASELINES = ("oracle",)  # reported beside the baselines, never a candidate to serve
SCORING_CALLS: Counter[str] = Counter()  # "booster_scored", "split_loaded"


@dataclass
class Evaluation:
    split: str
    metrics: dict[str, float]  # the model
    baselines: dict[str, dict[str, float]]  # every baselines.BASELINES entry, oracle when known
    queries: int
    queries_evaluated: int
    queries_without_positives: int
    candidate_recall: float
    per_industry: pd.DataFrame
    ndcg_curve: pd.DataFrame
    # baseline -> {"ratio", "ci_low", "ci_high"}: model / baseline mean NDCG@10, paired bootstrap
    ratio_ci: dict[str, dict[str, float]] = field(default_factory=dict)
    # feature -> total gain of the model scored (so a later step plots it without the booster)
    feature_importance: dict[str, float] = field(default_factory=dict)

    def flat_metrics(self) -> dict[str, float]:
        """MLflow metric names: model metrics bare, baselines prefixed (industry_popularity_ndcg_at_10)."""
        out = dict(self.metrics)
        for name, m in self.baselines.items():
            out.update({f"{name}_{k}": v for k, v in m.items()})
        for name, ci in self.ratio_ci.items():
            out.update(
                {f"ndcg_ratio_vs_{name}{'' if k == 'ratio' else '_' + k}": v for k, v in ci.items()}
            )
        out["candidate_recall"] = self.candidate_recall
        out["test_queries_evaluated"] = float(self.queries_evaluated)
        out["test_queries_without_positives"] = float(self.queries_without_positives)
        return out

    @property
    def margin_vs_industry_popularity(self) -> float:
        return self.metrics["ndcg_at_10"] - self.baselines["industry_popularity"]["ndcg_at_10"]

    @property
    def strongest_baseline(self) -> str:
        """The servable baseline with the highest NDCG@10 on this holdout (first listed on ties)."""
        names = [n for n in self.baselines if n not in NOT_BASELINES]
        return max(names, key=lambda n: _nan_low(self.baselines[n]["ndcg_at_10"]))

    def to_json(self) -> dict:
        """Everything, JSON-safe (stored with the version it scored)."""
        d = asdict(self)
        d["per_industry"] = self.per_industry.to_dict("records")
        d["ndcg_curve"] = self.ndcg_curve.to_dict("records")
        return d

    @classmethod
    def from_json(cls, d: dict) -> Evaluation:
        return cls(
            **{
                **d,
                "per_industry": pd.DataFrame(d["per_industry"]),
                "ndcg_curve": pd.DataFrame(d["ndcg_curve"]),
            }
        )


def _nan_low(x: float) -> float:
    return float("-inf") if x is None or np.isnan(x) else float(x)


def _paired_resampled_sums(
    a: np.ndarray, b: np.ndarray, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sums of `a` and of `b` over `samples` resamples of the same query indices (paired)."""
    rng = np.random.default_rng(seed)
    n = len(a)
    sa, sb = [], []
    for start in range(0, samples, 100):  # chunks: samples x n indices would not fit at scale
        idx = rng.integers(0, n, size=(min(100, samples - start), n))
        sa.append(a[idx].sum(axis=1))
        sb.append(b[idx].sum(axis=1))
    return np.concatenate(sa), np.concatenate(sb)


def paired_bootstrap_ratio(
    model: np.ndarray, baseline: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> dict[str, float]:
    """mean(model) / mean(baseline) with a 95 % percentile CI, resampling queries in pairs.

    Paired: each resample draws the same restaurants for both methods, so the CI reflects how
    consistently the model beats the baseline on the same restaurants, not the spread of either.
    """
    model, baseline = np.asarray(model, float), np.asarray(baseline, float)
    if len(model) == 0 or baseline.sum() <= 0:
        return {"ratio": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    num, den = _paired_resampled_sums(model, baseline, samples, seed)
    r = np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)
    lo, hi = np.nanpercentile(r, [2.5, 97.5])
    return {
        "ratio": float(model.mean() / baseline.mean()),
        "ci_low": float(lo),
        "ci_high": float(hi),
    }


def paired_bootstrap_difference(
    a: np.ndarray, b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> dict[str, float]:
    """mean(a) - mean(b) with a 95 % percentile CI, resampling queries in pairs (as the ratio)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) == 0:
        return {"difference": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    sa, sb = _paired_resampled_sums(a, b, samples, seed)
    lo, hi = np.percentile((sa - sb) / len(a), [2.5, 97.5])
    return {"difference": float(a.mean() - b.mean()), "ci_low": float(lo), "ci_high": float(hi)}


_SCORE_ROWS = 500_000  # candidate rows per predict while scoring a split (bounds the matrix)


def model_rankings(
    con: duckdb.DuckDBPyConnection,
    booster,
    split: str = "test",
    industries: list[str] | None = None,
    compiled_cache: Path | None = None,
) -> pd.DataFrame:
    """Score every candidate of `split` with `booster`: DataFrame(restaurant_id, product_id, score).

    `industries`: the industry list the booster was trained with, when it may differ from the
    dataset's (a champion trained before an industry was added); industry_code is re-derived from
    the industry names with it, as serving does. `compiled_cache`: score with the booster compiled
    there (`_predictor`), LightGBM's own scores.

    The rows (`load_split`'s, returned in its order) stream from DuckDB in batches, each cast to
    one float64 matrix and scored (`score_frame`'s values): the whole split never sits in pandas
    nor in a DuckDB sort.
    """
    names = booster.feature_name()
    columns = set(con.execute("SELECT * FROM rk_candidates LIMIT 0").fetchdf().columns)
    missing = [c for c in names if c not in columns]
    if missing:
        raise KeyError(f"booster needs features the frame lacks: {missing}")
    SCORING_CALLS["split_loaded"] += 1
    SCORING_CALLS["booster_scored"] += 1
    code = industry_coder(industries) if industries is not None else None
    if "industry_code" not in names:
        code = None
    # Ids travel as integer codes in sorted id order (restaurants, products): the rows sort on
    # them as on the ids, and the frame holds them as categoricals, never as millions of strings.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _eval_q AS SELECT restaurant_id, "
        "CAST(row_number() OVER (ORDER BY restaurant_id) - 1 AS INTEGER) AS qc "
        "FROM (SELECT DISTINCT restaurant_id FROM rk_candidates WHERE split = $s)",
        {"s": split},
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _eval_p AS SELECT product_id, "
        "CAST(row_number() OVER (ORDER BY product_id) - 1 AS INTEGER) AS pc "
        "FROM (SELECT DISTINCT product_id FROM rk_candidates WHERE split = $s)",
        {"s": split},
    )
    try:
        predict = _predictor(con, booster, compiled_cache)
        q_ids, p_ids, qc, pc, scores = _score_coded(con, predict, split, names, code)
    finally:
        con.execute("DROP TABLE IF EXISTS _eval_q; DROP TABLE IF EXISTS _eval_p")

    q, p = (np.concatenate(c) if c else np.zeros(0, dtype=np.int32) for c in (qc, pc))
    order = np.lexsort((p, q))  # load_split's order (by restaurant, then product)
    return pd.DataFrame(
        {
            "restaurant_id": pd.Categorical.from_codes(q[order], pd.Index(q_ids, dtype=object)),
            "product_id": pd.Categorical.from_codes(p[order], pd.Index(p_ids, dtype=object)),
            "score": np.concatenate(scores)[order] if scores else np.zeros(0),
        }
    )


def _predictor(con, booster, compiled_cache: Path | None):
    """LightGBM's predict of `booster`, or, with `compiled_cache`, the booster compiled to machine
    code (ranking/compiled.py: ~2x less CPU per row) once it scores the first batch's first rows
    exactly as LightGBM does. The file compiled holds the bytes `export_serving_artifacts` writes
    for the same booster and the cache is keyed by them: a rebuild's `recommendations` finds the
    new champion already compiled (one compile per rebuild)."""
    import tempfile

    from recsys_assets.ranking.compiled import checked, compile_booster

    def lightgbm(x: np.ndarray) -> np.ndarray:
        return booster.predict(x, num_iteration=booster.best_iteration or None)

    if compiled_cache is None:
        return lightgbm
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "booster.txt"
        booster.save_model(str(model_file), num_iteration=booster.best_iteration)
        fast = compile_booster(model_file, Path(compiled_cache))
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    use: list = []  # [the compiled predict] or [None], decided on the first batch

    def predict(x: np.ndarray) -> np.ndarray:
        if not use:
            use.append(fast if checked(fast, booster, x) else None)
        return lightgbm(x) if use[0] is None else use[0](x, threads)

    return predict


def _score_coded(con, predict, split: str, names: list[str], code):
    """Stream the split (ids as the codes of _eval_q/_eval_p) through `predict` in batches."""
    from recsys_assets.ranking.compiled import feature_matrix

    cols = ", ".join(f"CAST(c.{c} AS DOUBLE) AS {c}" for c in names)
    q_ids = con.execute("SELECT restaurant_id FROM _eval_q ORDER BY qc").fetchnumpy()
    p_ids = con.execute("SELECT product_id FROM _eval_p ORDER BY pc").fetchnumpy()
    reader = con.sql(
        f"SELECT q.qc, p.pc, {'c.industry, ' if code else ''}{cols} FROM rk_candidates c "
        "JOIN _eval_q q USING (restaurant_id) JOIN _eval_p p USING (product_id) "
        "WHERE c.split = $s",  # no ORDER BY: DuckDB would hold the whole split to sort it
        params={"s": split},
    ).to_arrow_reader(_SCORE_ROWS)
    qc, pc, scores = [], [], []
    for batch in reader:
        x = feature_matrix(batch, names)
        if code is not None:  # serving's industry_code: industry_coder over the names (NULL too)
            at, uniques = pd.factorize(batch.column("industry").to_numpy(zero_copy_only=False))
            lookup = np.array([*(code(u) for u in uniques), code(None)], dtype=np.float64)
            x[:, names.index("industry_code")] = lookup[at]  # -1 (NULL): the last entry
        qc.append(batch.column("qc").to_numpy())
        pc.append(batch.column("pc").to_numpy())
        scores.append(predict(x))
    return q_ids["restaurant_id"], p_ids["product_id"], qc, pc, scores


def score_with_booster(
    con: duckdb.DuckDBPyConnection,
    booster,
    split: str = "test",
    industries: list[str] | None = None,
) -> MetricSummary:
    """Metrics of any booster on the current holdout (the promotion gate re-scores the champion so)."""
    queries = load_queries(con, split)["restaurant_id"].astype(str).tolist()
    truth = coded_truth(load_truth(con, split), queries, max(CURVE_KS))
    ranked = model_rankings(con, booster, split, industries)
    return summarize_frame(ranked, truth)[0]


def _oracle_frame(ground_truth_dir: str | Path, restaurant_ids: list[str]) -> pd.DataFrame:
    """The generator's expected demand of each restaurant's products (positive ones), the oracle's
    ranking by score; the metrics read its first `BASELINE_DEPTH` (= the curve's depth)."""
    from recsys_assets.sample_data import oracle_scores

    scores = oracle_scores(ground_truth_dir, restaurant_ids)
    return scores[scores["score"].to_numpy() > 0]


def evaluate(
    con: duckdb.DuckDBPyConnection,
    ranker,
    dataset: RankingDataset,
    ground_truth_dir: str | Path | None = None,
    split: str = "test",
    industries: list[str] | None = None,
    compiled_cache: Path | None = None,
) -> Evaluation:
    """Model (a TrainedRanker or a booster) vs baselines vs oracle on `split`, plus per industry.

    `industries`: the list the booster was trained with (see `model_rankings`); `compiled_cache`:
    score with the compiled booster (see `model_rankings`). Every method is scored by
    `summarize_frame` on its long ranked frame (the numbers of `summarize` and `ndcg_curve` over
    per-query lists, without building them). The baselines and the oracle are ranked and scored
    in a second thread (the baselines' tables on a second connection) while this one scores the
    model: numpy, DuckDB and the predict release the GIL, so both cores work.
    """
    booster = getattr(ranker, "booster", ranker)
    qs = load_queries(con, split)
    queries = qs["restaurant_id"].astype(str).tolist()
    truth = coded_truth(load_truth(con, split), queries, max(CURVE_KS))
    summaries, curves = _score_methods(
        con, booster, dataset, split, industries, compiled_cache, ground_truth_dir, queries, truth
    )
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
    for name, c in curves.items():
        curve[name] = [c[k] for k in CURVE_KS]

    model = summaries["model"]
    gains = booster.feature_importance(importance_type="gain")
    return Evaluation(
        ratio_ci=_ratio_cis(summaries),
        feature_importance=dict(zip(booster.feature_name(), map(float, gains), strict=True)),
        split=split,
        metrics=model.metrics,
        baselines={n: s.metrics for n, s in summaries.items() if n != "model"},
        queries=len(queries),
        queries_evaluated=model.queries_evaluated,
        queries_without_positives=model.queries_without_positives,
        candidate_recall=dataset.candidate_recall.get(split, float("nan")),
        per_industry=per_ind,
        ndcg_curve=curve,
    )


def _score_methods(
    con, booster, dataset, split, industries, compiled_cache, ground_truth_dir, queries, truth
) -> tuple[dict[str, MetricSummary], dict[str, dict[int, float]]]:
    """(summaries, curves) of the model, every baseline and the oracle, in that order. The
    methods that do not need the model (the baselines on a second connection, the oracle) are
    ranked and scored in a second thread while this one scores the model: numpy, DuckDB and the
    predict release the GIL, so both cores work."""
    summaries, curves = {}, {}
    cursor = con.cursor()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="rk-baselines") as pool:
            side = pool.submit(
                _side_methods, cursor, dataset, split, ground_truth_dir, queries, truth
            )
            summaries["model"], curves["model"] = summarize_frame(
                model_rankings(con, booster, split, industries, compiled_cache), truth, CURVE_KS
            )
            for name, (summary, curve) in side.result().items():
                summaries[name], curves[name] = summary, curve
    finally:
        cursor.close()
    # The order of the former evaluate (model, baselines, oracle): the JSON and the reports keep it.
    order = [n for n in ("model", *bl.BASELINES, "oracle") if n in summaries]
    return {n: summaries[n] for n in order}, {n: curves[n] for n in order}


def _side_methods(
    cursor, dataset, split, ground_truth_dir, queries, truth
) -> dict[str, tuple[MetricSummary, dict[int, float]]]:
    """(summary, curve) of every baseline and of the oracle (when the ground truth is known)."""
    out = {}
    for name, frame in bl.holdout_rankings(cursor, dataset, split, BASELINE_DEPTH).items():
        out[name] = summarize_frame(frame, truth, CURVE_KS, score_col=None, rank_col="rank")
    if ground_truth_dir is not None:
        out["oracle"] = summarize_frame(_oracle_frame(ground_truth_dir, queries), truth, CURVE_KS)
    return out


def _ratio_cis(summaries: dict) -> dict[str, dict[str, float]]:
    """Model / baseline NDCG@10 with a paired bootstrap CI, for every baseline (oracle too)."""
    model = summaries["model"].per_query.set_index("query_id")["ndcg_at_10"]
    out = {}
    for name, s in summaries.items():
        if name == "model":
            continue
        other = s.per_query.set_index("query_id")["ndcg_at_10"].reindex(model.index).fillna(0.0)
        out[name] = paired_bootstrap_ratio(model.to_numpy(), other.to_numpy())
    return out


def format_report(ev: Evaluation) -> str:
    """A plain-text table of model vs baselines (for logs and the benchmark)."""
    rows = [("model", ev.metrics), *ev.baselines.items()]
    head = f"{'method':<22}" + "".join(f"{m:>16}" for m in METRIC_NAMES)
    lines = [head]
    for name, m in rows:
        lines.append(
            f"{name:<22}" + "".join(f"{m.get(k, float('nan')):>16.4f}" for k in METRIC_NAMES)
        )
    for name, ci in ev.ratio_ci.items():
        lines.append(
            f"model/{name}: {ci['ratio']:.3f} (95% CI {ci['ci_low']:.3f}-{ci['ci_high']:.3f})"
        )
    lines.append(
        f"queries={ev.queries} evaluated={ev.queries_evaluated} "
        f"without_positives={ev.queries_without_positives} candidate_recall={ev.candidate_recall:.3f}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Evaluate once: a model's numbers on one holdout are stored in the warehouse with the model
# (version + MLflow run id, so a recreated registry cannot hit a stale row) and the holdout's key
# (data snapshot hash, cutoff, dataset recipe, code digest). Later steps and later rebuilds read them.
# --------------------------------------------------------------------------------------------

EVALUATIONS_TABLE = "rk_model_evaluations"
SCORES_TABLE = "rk_model_scores"


def _ensure_eval_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {EVALUATIONS_TABLE} (model_key VARCHAR, holdout_key VARCHAR, "
        "dagster_run_id VARCHAR, evaluated_at TIMESTAMP, evaluation VARCHAR)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SCORES_TABLE} (model_key VARCHAR, holdout_key VARCHAR, "
        "ndcg_at_10 DOUBLE, metrics VARCHAR, scored_at TIMESTAMP)"
    )


def save_evaluation(
    con: duckdb.DuckDBPyConnection,
    model_key: str,
    holdout_key: str,
    ev: Evaluation,
    dagster_run_id: str | None = None,
) -> None:
    """Store a challenger's evaluation (and its score, which the gate reads when it is champion)."""
    import json

    _ensure_eval_tables(con)
    con.execute(
        f"INSERT INTO {EVALUATIONS_TABLE} VALUES (?, ?, ?, now(), ?)",
        [model_key, holdout_key, dagster_run_id, json.dumps(ev.to_json(), allow_nan=True)],
    )
    save_score(con, model_key, holdout_key, ev.metrics)


def load_evaluation(
    con: duckdb.DuckDBPyConnection, model_key: str, holdout_key: str
) -> Evaluation | None:
    import json

    _ensure_eval_tables(con)
    row = con.execute(
        f"SELECT evaluation FROM {EVALUATIONS_TABLE} WHERE model_key = ? AND holdout_key = ? "
        "ORDER BY evaluated_at DESC LIMIT 1",
        [model_key, holdout_key],
    ).fetchone()
    return None if row is None else Evaluation.from_json(json.loads(row[0]))


def evaluated_model_of_run(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> str | None:
    """The model key a Dagster run (or the run it re-executes) evaluated, newest first."""
    _ensure_eval_tables(con)
    for run_id in run_ids:
        row = con.execute(
            f"SELECT model_key FROM {EVALUATIONS_TABLE} WHERE dagster_run_id = ? "
            "ORDER BY evaluated_at DESC LIMIT 1",
            [run_id],
        ).fetchone()
        if row is not None:
            return str(row[0])
    return None


def save_score(
    con: duckdb.DuckDBPyConnection, model_key: str, holdout_key: str, metrics: dict[str, float]
) -> None:
    import json

    _ensure_eval_tables(con)
    con.execute(
        f"INSERT INTO {SCORES_TABLE} VALUES (?, ?, ?, ?, now())",
        [model_key, holdout_key, metrics["ndcg_at_10"], json.dumps(metrics, allow_nan=True)],
    )


def cached_score(
    con: duckdb.DuckDBPyConnection, model_key: str, holdout_key: str
) -> dict[str, float] | None:
    import json

    _ensure_eval_tables(con)
    row = con.execute(
        f"SELECT metrics FROM {SCORES_TABLE} WHERE model_key = ? AND holdout_key = ? "
        "ORDER BY scored_at DESC LIMIT 1",
        [model_key, holdout_key],
    ).fetchone()
    return None if row is None else json.loads(row[0])
