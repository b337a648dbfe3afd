"""Train the LightGBM ranker on the cold-start dataset.

Native `lightgbm.train` (no sklearn wrapper) because the artefact we keep is the booster's own text
format: readable, version-tolerant, and loadable without pickle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from recsys_assets.ranking import features as feature_registry
from recsys_assets.ranking.dataset import RankingDataset

if TYPE_CHECKING:
    import lightgbm  # imported lazily at run time: importing it is slow

DEFAULT_PARAMS: dict = {
    # rank_xendcg, not lambdarank: a listwise softmax cross-entropy on each query's grades, with no
    # pairwise gradients, so a boosting round costs about half (0.22 against 0.41-0.48 CPU-s at
    # medium) and the fit 2-3.5x less CPU. Quality judged with benchmarks/worlds.py --variant
    # (REPORT.md, 2026-12-03): small, 6 worlds x 2 seeds, NDCG@10 new/old mean 1.007, lowest
    # 0.989, no CI below 1; medium default 0.9995 (0.994-1.005), random seeds 1/2 0.999 / 0.999.
    "objective": "rank_xendcg",
    "metric": "ndcg",
    "eval_at": [10],
    # 0.05 and 31 leaves kept (REPORT.md, 2026-12-04, helper "trees"): faster rates with fewer or
    # smaller trees halve the medium fit for the same NDCG@10, but at large (12k queries) rate 0.1
    # costs quality (15 leaves: 233 trees, 0.996, CI 0.9945-0.9974; 23 leaves: 153 trees, 0.999,
    # CI 0.998-1.0003), and none of 14 candidates passed the small 6-world bar. Averaged over
    # LightGBM seeds 42-44 (worlds.py --lgb-seeds), rate 0.1 + 23 leaves is 1.001 on the small
    # bar but loses on menu_items seed 1 reproducibly: 0.993 (CI 0.986-0.9999; seeds 42-47:
    # 0.993, CI 0.988-0.999).
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_boost_round": 400,
    # 30, not 60: the rounds after the best iteration are pure cost (each ~0.45 CPU-s at medium).
    # Judged with benchmarks/worlds.py at medium (REPORT.md): the same model in most runs (the
    # smoothed best lies well inside 30 rounds), 0.997 (CI 0.993-1.001) on `random` seed 1.
    "early_stopping_rounds": 30,
    # The iteration kept is the best of the validation NDCG averaged over this many iterations
    # (`smoothed_best_iteration`), not its single best one. Not a LightGBM parameter.
    "best_iteration_window": 21,
    "seed": 42,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


@dataclass
class TrainedRanker:
    booster: lightgbm.Booster
    features: list[str]
    params: dict
    best_iteration: int
    train_seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return score_frame(self.booster, frame)


def score_frame(booster, frame: pd.DataFrame) -> np.ndarray:
    """Score candidate rows with any booster, using the feature names the booster was trained on."""
    names = booster.feature_name()
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise KeyError(f"booster needs features the frame lacks: {missing}")
    if frame.empty:
        return np.zeros(0)
    x = frame[names].astype("float64").to_numpy()
    return booster.predict(x, num_iteration=booster.best_iteration or None)


def _passive_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning (unless the environment says otherwise).

    With the default (active) wait policy, LightGBM's threads busy-wait between parallel regions;
    on a shared 2-core machine that starves everything else and made training ~8x slower here
    (small scale: 37 s vs 4.2 s for identical models). Must run before lightgbm (libgomp) loads.
    """
    from recsys_assets.config import set_process_env

    set_process_env("OMP_WAIT_POLICY", "PASSIVE", overwrite=False)


@dataclass
class _SplitMatrix:
    x: pd.DataFrame  # the features as one float64 block (a view of a C-contiguous array)
    relevance: np.ndarray
    group: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.relevance)


# Rows fetched from DuckDB per batch while filling the feature matrix.
_FETCH_ROWS = 1_000_000
# Most queries (restaurants with at least one positive) LightGBM sees per split. The small and
# medium samples stay below these, so they train on every query. At the large scale (~108k train
# queries) the cap is set from the large learning curve (benchmarks/learning_curve.py on the
# 2026-12-03 large warehouse, nested md5 subsets, NDCG@10 on the same 32k test restaurants, paired
# bootstrap 95 % CI of the gain; lambdarank, before rank_xendcg; see benchmarks/REPORT.md):
#   6k 0.5296 (108 CPU-s to load and fit) -> 12k 0.5303, +0.0006 (-0.0003..+0.0015), 102 CPU-s
#   -> 24k 0.5316, +0.0014 (+0.0005..+0.0023), 415 CPU-s, 400 trees (the round cap).
# Doubling past 12k still helps measurably, but by 0.26 % of NDCG@10 for 4x the training CPU.
# Re-measured by `make bench` on 2026-12-04 (rank_xendcg, a faster machine; benchmarks/REPORT.md,
# learning curve): 8k 0.5307 (11.7 s to fit) -> 16k 0.5310 (21.1 s) -> 32k 0.5323 (36.9 s) -> 64k
# 0.5338 (82.0 s) -> all 107,861 queries 0.5351 (102.7 s, 7.2M rows). The whole set is +0.8 % of
# NDCG@10 for ~6x the fit and a bigger model to score in serving (the large `recommendations`
# step is 24 s of its 30 s budget with a 166-tree champion). So 12k: past the knee of the curve.
MAX_QUERIES: dict[str, int | None] = {"train": 12_000, "valid": 4_000}  # None: all


def _load_training_matrix(
    con: duckdb.DuckDBPyConnection, split: str, features: list[str], max_queries: int | None = None
) -> _SplitMatrix:
    """Candidate rows of `split` for LightGBM, streamed from DuckDB into one preallocated matrix.

    Same rows, order and values as `load_split` minus the queries without a positive, cast to
    float64, but at the large scale that path held several whole-table pandas copies at once (the
    peak of the rebuild); here the query filter runs in SQL and only the float64 matrix, the
    relevance grades and the group sizes are ever in memory.
    """
    # Which queries: every one with a positive, or a subset fixed by md5(restaurant_id) (the
    # same restaurants on every run, independent of row order) when there are more than allowed.
    limit = "" if max_queries is None else "ORDER BY md5(restaurant_id), restaurant_id LIMIT $n"
    keep = f"""
        FROM rk_candidates
        WHERE split = $s AND restaurant_id IN (
            SELECT restaurant_id FROM rk_candidates WHERE split = $s
            GROUP BY restaurant_id HAVING max(relevance) > 0 {limit})
    """
    params = {"s": split} if max_queries is None else {"s": split, "n": int(max_queries)}
    groups = con.execute(
        f"SELECT count(*) AS n {keep} GROUP BY restaurant_id ORDER BY restaurant_id", params
    ).fetchnumpy()["n"]
    group = np.asarray(groups, dtype=np.int64)
    n = int(group.sum())
    x = np.empty((n, len(features)), dtype=np.float64)
    relevance = np.empty(n, dtype=np.int64)
    cols = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in features)
    # con.sql streams record batches (a DB-API result would materialise every row first).
    reader = con.sql(
        f"SELECT {cols}, relevance {keep} ORDER BY restaurant_id, product_id", params=params
    ).to_arrow_reader(_FETCH_ROWS)
    at = 0
    for batch in reader:
        m = batch.num_rows
        for j, c in enumerate(features):
            # Float columns: a NULL becomes NaN, as the pandas float64 cast did.
            x[at : at + m, j] = batch.column(c).to_numpy(zero_copy_only=False)
        relevance[at : at + m] = batch.column("relevance").to_numpy(zero_copy_only=False)
        at += m
    if at != n:
        raise RuntimeError(
            f"rk_candidates changed while loading split {split!r}: {at} rows, expected {n}"
        )
    return _SplitMatrix(pd.DataFrame(x, columns=features, copy=False), relevance, group)


def smoothed_best_iteration(curve: list[float], window: int) -> int:
    """The 1-based iteration whose validation NDCG, averaged over the `window` iterations centred on
    it (fewer at the ends), is highest.

    Why: the validation cohort is a few hundred restaurants, so its single best iteration is mostly
    noise: early stopping kept 4 to 280 trees for equally good models, and a model of 4 trees is
    a worse ranker than its plateau. Averaging picks the middle of the best plateau instead.
    """
    c = np.asarray(curve, dtype=float)
    if len(c) == 0:
        return 0
    half = window // 2
    sums = np.concatenate([[0.0], np.cumsum(c)])
    i = np.arange(len(c))
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, len(c))
    return int(np.argmax((sums[hi] - sums[lo]) / (hi - lo))) + 1


def load_training_matrices(con: duckdb.DuckDBPyConnection) -> dict[str, _SplitMatrix]:
    """The train and valid splits' matrices, as `train_ranker` loads them: `ranker_model` loads
    them in a thread (DuckDB, GIL-free) while it sets up MLflow and imports lightgbm."""
    features = list(feature_registry.FEATURES)
    return {
        s: _load_training_matrix(con, s, features, MAX_QUERIES.get(s)) for s in ("train", "valid")
    }


def import_lightgbm():
    """lightgbm, loaded with passive OpenMP threads (`_passive_openmp`)."""
    _passive_openmp()
    import lightgbm

    return lightgbm


def _binned(con, split: str, features: list[str], cats: list[str], p: dict, reference=None, m=None):
    """(binned Dataset, rows, queries): the float matrix (`m`, or loaded now) is dropped once
    LightGBM has binned it."""
    import lightgbm as lgb

    if m is None:
        m = _load_training_matrix(con, split, features, MAX_QUERIES.get(split))
    if m.rows == 0:
        return None, 0, 0
    # The Dataset gets the training params up front (what lgb.train would give it) so that
    # constructing it here bins exactly as training would.
    ds = lgb.Dataset(
        m.x,
        label=m.relevance,
        group=m.group,
        feature_name=features,
        categorical_feature=cats,
        reference=reference,
        params=dict(p),
        free_raw_data=True,
    ).construct()
    return ds, m.rows, len(m.group)


def train_ranker(
    con: duckdb.DuckDBPyConnection,
    dataset: RankingDataset | None = None,
    params: dict | None = None,
    matrices: dict[str, _SplitMatrix] | None = None,
) -> TrainedRanker:
    """Fit on the train split, early-stop on the valid split (NDCG@10 on the validation cohort) and
    keep the best iteration of that curve smoothed over `best_iteration_window` iterations.

    Queries without any positive are dropped from both: they carry no ranking signal and LightGBM
    would score them as perfect. LightGBM labels are the 0..4 relevance grades (< 31 as it requires).
    Above `MAX_QUERIES` per split, a fixed md5-chosen subset of the queries is used.
    `matrices`: those of `load_training_matrices`, loaded already (taken out of the dict as they
    are binned, so each is freed once LightGBM has it).
    """
    lgb = import_lightgbm()
    matrices = {} if matrices is None else matrices

    p = {**DEFAULT_PARAMS, **(params or {})}
    rounds = int(p.pop("num_boost_round"))
    stop = int(p.pop("early_stopping_rounds"))
    window = int(p.pop("best_iteration_window", 1))
    features = list(feature_registry.FEATURES)
    cats = [c for c in feature_registry.CATEGORICAL_FEATURES if c in features]

    dtrain, train_rows, train_queries = _binned(
        con, "train", features, cats, p, m=matrices.pop("train", None)
    )
    if dtrain is None:
        raise ValueError("no training query has a positive: cannot train a ranker")
    dvalid, valid_rows, valid_queries = _binned(
        con, "valid", features, cats, p, dtrain, matrices.pop("valid", None)
    )
    valid_sets = [dtrain]
    callbacks: list[Callable[..., Any]] = []
    if dvalid is not None:
        valid_sets = [dvalid]
        callbacks.append(lgb.early_stopping(stop, first_metric_only=True, verbose=False))
    curves: dict[str, dict[str, list[float]]] = {}
    callbacks.append(lgb.record_evaluation(curves))
    t0 = time.perf_counter()
    booster = lgb.train(
        p,
        dtrain,
        num_boost_round=rounds,
        valid_sets=valid_sets,
        valid_names=["valid"],
        callbacks=callbacks,
        # every tree is kept: the smoothed best iteration may come after early stopping's
        keep_training_booster=True,
    )
    elapsed = time.perf_counter() - t0
    best = booster.best_iteration or booster.current_iteration()
    if window > 1 and dvalid is not None:
        best = smoothed_best_iteration(curves["valid"]["ndcg@10"], window)
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    booster.best_iteration = best
    # "fitted_": what LightGBM saw (queries with a positive candidate, capped by MAX_QUERIES). They
    # once shared the dataset's key names (train_queries = every train query) and overwrote them
    # in MLflow, so count_train_queries read 1042 next to 1044 train_queries_with_positives.
    counts = {
        "fitted_train_queries": train_queries,
        "fitted_train_rows": train_rows,
        "fitted_valid_queries": valid_queries,
        "fitted_valid_rows": valid_rows,
    }
    return TrainedRanker(
        booster,
        features,
        {
            **p,
            "num_boost_round": rounds,
            "early_stopping_rounds": stop,
            "best_iteration_window": window,
        },
        best,
        elapsed,
        counts,
    )
