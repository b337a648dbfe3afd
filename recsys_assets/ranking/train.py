"""Train the LightGBM ranker on the cold-start dataset.

Native `lightgbm.train` (no sklearn wrapper) because the artefact we keep is the booster's own text
format: readable, version-tolerant, and loadable without pickle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from recsys_assets.ranking.dataset import CATEGORICAL_FEATURES, FEATURES, RankingDataset, load_split

DEFAULT_PARAMS: dict = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "lambdarank_truncation_level": 20,
    "num_boost_round": 400,
    "early_stopping_rounds": 40,
    "seed": 42,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


@dataclass
class TrainedRanker:
    booster: "lightgbm.Booster"  # noqa: F821 - imported lazily
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


def _drop_queries_without_positives(frame: pd.DataFrame) -> pd.DataFrame:
    has_pos = frame.groupby("restaurant_id")["label"].transform("max") > 0
    return frame.loc[has_pos].reset_index(drop=True)


def _group_sizes(frame: pd.DataFrame) -> np.ndarray:
    # Frames come sorted by restaurant_id; groupby(sort=False) keeps that order.
    return frame.groupby("restaurant_id", sort=False).size().to_numpy()


def train_ranker(
    con: duckdb.DuckDBPyConnection,
    dataset: RankingDataset | None = None,
    params: dict | None = None,
) -> TrainedRanker:
    """Fit on the train split, early-stop on the valid split (NDCG@10 on the validation cohort).

    Queries without any positive are dropped from both: they carry no ranking signal and LightGBM
    would score them as perfect. Labels are the 0..4 quantity grades (< 31 as LightGBM requires).
    """
    import lightgbm as lgb

    p = {**DEFAULT_PARAMS, **(params or {})}
    rounds = int(p.pop("num_boost_round"))
    stop = int(p.pop("early_stopping_rounds"))
    train = _drop_queries_without_positives(load_split(con, "train"))
    valid = _drop_queries_without_positives(load_split(con, "valid"))
    if train.empty:
        raise ValueError("no training query has a positive: cannot train a ranker")
    features = list(FEATURES)
    cats = [c for c in CATEGORICAL_FEATURES if c in features]

    def mk(frame, reference=None):
        return lgb.Dataset(
            frame[features].astype("float64"), label=frame["label"].astype(int).to_numpy(),
            group=_group_sizes(frame), feature_name=features, categorical_feature=cats,
            reference=reference, free_raw_data=False,
        )

    dtrain = mk(train)
    valid_sets, callbacks = [dtrain], []
    if not valid.empty:
        valid_sets = [mk(valid, dtrain)]
        callbacks.append(lgb.early_stopping(stop, first_metric_only=True, verbose=False))
    t0 = time.perf_counter()
    booster = lgb.train(p, dtrain, num_boost_round=rounds, valid_sets=valid_sets,
                        valid_names=["valid"], callbacks=callbacks)
    elapsed = time.perf_counter() - t0
    best = booster.best_iteration or booster.current_iteration()
    counts = {
        "train_queries": int(train["restaurant_id"].nunique()),
        "train_rows": len(train),
        "valid_queries": int(valid["restaurant_id"].nunique()) if not valid.empty else 0,
        "valid_rows": len(valid),
    }
    return TrainedRanker(booster, features, {**p, "num_boost_round": rounds,
                                             "early_stopping_rounds": stop}, best, elapsed, counts)
