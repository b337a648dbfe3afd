"""The servable ranker: native LightGBM booster + the feature tables it needs, as an MLflow pyfunc.

Why this shape:
- `mlflow.lightgbm.log_model` cannot serialise an LGBMRanker (skops rejects it) and we load nothing
  back through pickle, so the model is the booster's own text file plus Parquet/JSON tables.
- The pyfunc is logged as *models from code* (a tiny script calling `mlflow.models.set_model`), so
  MLflow does not cloudpickle the Python object either.
- Serving features are computed with the same SQL and numpy as training (`token_features`), run by
  an in-memory DuckDB over the exported serving snapshot: one definition, no training/serving skew,
  and no warehouse needed at serving time. What does not depend on the request is computed once per
  server (`request_features.SnapshotIndex`), so a request runs one SQL statement.

Input rows: any of restaurant_id, industry, name, menu, description, region, size, label_confidence, k.
A row without a valid industry is labeled from name + menu with the OfflineLabeler.
Output: one row per recommended product: request_index, restaurant_id, industry, label_confidence,
rank, product_id, name, score.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys_assets import taxonomy
from recsys_assets.ranking.compiled import feature_matrix
from recsys_assets.ranking.dataset import (
    SIZE_ORD,
    RankingConfig,
    RankingDataset,
    candidate_params,
    industry_coder,
    menu_tokens,
)
from recsys_assets.ranking.features import CATEGORICAL_FEATURES
from recsys_assets.ranking.request_features import SnapshotIndex

if TYPE_CHECKING:
    from recsys_assets.labeling.offline import OfflineLabeler

DEFAULT_K = 10
MAX_K = 100
# Feature rows from which LightGBM predicts with its OpenMP threads (a request has ~100).
PARALLEL_ROWS = 20_000
BOOSTER_FILE = "booster.txt"
META_FILE = "meta.json"
TABLE_FILES = {
    "rk_snap_ind_prod": "snap_ind_prod.parquet",
    "rk_snap_ind_cat": "snap_ind_cat.parquet",
    "rk_snap_prod": "snap_prod.parquet",
    "rk_snap_token": "snap_token.parquet",
    "rk_snap_token_prod": "snap_token_prod.parquet",
    "rk_snap_basket": "snap_basket.parquet",
    "rk_snap_token_share": "snap_token_share.parquet",
    "products": "products.parquet",
}
# Tables a model logged before they existed lacks: it is served with them empty (its booster never
# reads the features they feed), so the shared feature SQL still runs. Their columns, typed.
ADDED_TABLES = {
    "rk_snap_basket": "snapshot DATE, product_id VARCHAR, basket_share DOUBLE",
    "rk_snap_token_share": "snapshot DATE, token VARCHAR, product_id VARCHAR, share_sum DOUBLE",
}
# Candidate parameters a model logged before them lacks (its meta.json), with values that leave
# what it was trained on unchanged.
_OLD_MODEL_PARAMS = {
    # menu words counted as the known tokens they contain: no known token is this long
    "contain_min_len": 1_000_000,
    # smoothing of the basket-share features (which such a booster never reads): the default
    "share_a": RankingConfig.share_smoothing,
}
INPUT_COLUMNS = (
    "restaurant_id",
    "industry",
    "name",
    "menu",
    "description",
    "region",
    "size",
    "label_confidence",
    "k",
)
OUTPUT_COLUMNS = (
    "request_index",
    "restaurant_id",
    "industry",
    "label_confidence",
    "rank",
    "product_id",
    "name",
    "score",
)


def export_serving_artifacts(
    con, trained, dataset: RankingDataset, out_dir: str | Path
) -> dict[str, str]:
    """Write the booster and the serving-snapshot tables; returns {artifact name: path} for MLflow."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    booster_path = out / BOOSTER_FILE
    trained.booster.save_model(str(booster_path), num_iteration=trained.best_iteration)
    paths["booster"] = str(booster_path)
    s = dataset.serving_snapshot
    for table, fname in TABLE_FILES.items():
        if table == "products":
            frame = con.execute(
                "SELECT product_id, name, category, unit_price FROM products ORDER BY product_id"
            ).df()
        else:
            frame = con.execute(f"SELECT * FROM {table} WHERE snapshot = $s", {"s": s}).df()
        frame.to_parquet(out / fname, index=False)
        paths[table] = str(out / fname)
    meta = {
        "features": list(trained.features),
        "categorical_features": [c for c in CATEGORICAL_FEATURES if c in trained.features],
        "serving_snapshot": str(s),
        "cutoff": str(dataset.cutoff),
        # The vocabularies the codes were trained with; serving maps names to codes with them.
        "industries": list(dataset.industries),
        "unknown_industry": taxonomy.OTHER,
        "regions": list(dataset.regions),
        "categories": list(dataset.categories),
        "relevance_thresholds": list(dataset.relevance_thresholds),
        "candidate_params": candidate_params(dataset.config),
        "best_iteration": int(trained.best_iteration),
        "default_k": DEFAULT_K,
    }
    (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    paths["meta"] = str(out / META_FILE)
    return paths


def model_industry_coder(meta: dict):
    """industry name -> code for the model described by `meta` (its meta.json).

    Models logged before the industry list was stored were trained and served with the taxonomy's
    order of the time; for them the current order is the only guess (and was what they got).
    """
    industries = meta.get("industries") or list(taxonomy.INDUSTRY_CODES)
    return industry_coder(industries, meta.get("unknown_industry", taxonomy.OTHER))


def _clean_str(v) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    s = str(v).strip()
    return s or None


class _Stubs:
    """Empty Parquet files standing in for `ADDED_TABLES` a model lacks; removed with the object."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self._dir: tempfile.TemporaryDirectory | None = None

    def add(self, table: str, columns: str) -> None:
        import duckdb

        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="recsys-stub-")
        path = str(Path(self._dir.name) / f"{table}.parquet")
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"CREATE TABLE t ({columns})")
            con.execute("COPY t TO $p (FORMAT parquet)", {"p": path})
        finally:
            con.close()
        self.paths[table] = path


def _empty_added_tables(artifacts: dict[str, str]) -> _Stubs:
    """Stubs for the tables of `ADDED_TABLES` that a (older) model's artefacts do not have."""
    stubs = _Stubs()
    for table, columns in ADDED_TABLES.items():
        if table not in artifacts or not Path(artifacts[table]).exists():
            stubs.add(table, columns)
    return stubs


class RankerServer:
    """Loads the artefacts once; `recommend` serves batches of requests (thread-safe)."""

    def __init__(self, artifacts: dict[str, str] | str | Path):
        import duckdb
        import lightgbm as lgb

        if not isinstance(artifacts, dict):
            base = Path(artifacts)
            artifacts = {t: str(base / f) for t, f in TABLE_FILES.items()}
            artifacts.update(booster=str(base / BOOSTER_FILE), meta=str(base / META_FILE))
        self.meta = json.loads(Path(artifacts["meta"]).read_text(encoding="utf-8"))
        self._stubs = _empty_added_tables(artifacts)  # kept: the stub files live as long as self
        # paths; batch scoring reads the snapshot tables
        self.artifacts = {**dict(artifacts), **self._stubs.paths}
        self.booster = lgb.Booster(model_file=artifacts["booster"])
        self.features = self.booster.feature_name()
        self.snapshot = pd.Timestamp(self.meta["serving_snapshot"]).date()
        # A model logged before menu words counted as the known tokens they contain was trained
        # without that match: it is served without it too (`_OLD_MODEL_PARAMS`).
        self.params = {**_OLD_MODEL_PARAMS, **self.meta["candidate_params"]}
        self.region_code = {r: i for i, r in enumerate(self.meta["regions"])}
        self.industry_code = model_industry_coder(self.meta)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET threads TO 1")
        for table in TABLE_FILES:
            self._con.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_parquet($p)",
                {"p": self.artifacts[table]},
            )
        products = self._con.execute("SELECT product_id, name FROM products").fetchall()
        self.product_names = dict(products)
        self._index: SnapshotIndex | None = None
        self._labeler: OfflineLabeler | None = None
        self._lock = threading.Lock()

    @property
    def index(self) -> SnapshotIndex:
        """Built by the first request: the `recommendations` asset loads the server for its
        artefacts and scores set-based, so it never pays for it."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = SnapshotIndex(self._con, self.snapshot, self.params)
        return self._index

    def set_threads(self, threads: int) -> None:
        """One thread keeps single requests fast; batch scoring of a whole base wants them all."""
        with self._lock:
            self._con.execute(f"SET threads TO {max(1, int(threads))}")

    def _label(self, name, menu, description):
        if self._labeler is None:
            from recsys_assets.labeling.offline import OfflineLabeler

            self._labeler = OfflineLabeler()
        pred = self._labeler.predict(name or "", menu or "", description)
        return pred.industry, float(pred.confidence)

    def _queries(self, requests: pd.DataFrame) -> tuple[pd.DataFrame, list[list[str]], list[int]]:
        """The requests as rk_queries rows (ids q00000000, ...), their menu tokens, their ks."""
        rows: list[tuple] = []
        words: list[list[str]] = []
        ks: list[int] = []
        for i, rec in enumerate(requests.to_dict("records")):
            get = rec.get  # a column the request lacks reads as None
            industry = _clean_str(get("industry"))
            conf = get("label_confidence")
            conf = None if conf is None or pd.isna(conf) else float(conf)
            if industry not in taxonomy.INDUSTRY_CODES:
                industry, labeled_conf = self._label(
                    _clean_str(get("name")), _clean_str(get("menu")), _clean_str(get("description"))
                )
                conf = labeled_conf if conf is None else conf
            elif conf is None:
                conf = 1.0  # the caller asserted the industry
            size = _clean_str(get("size"))
            region = _clean_str(get("region"))
            k = get("k")
            k = DEFAULT_K if k is None or pd.isna(k) else int(k)
            ks.append(max(1, min(k, MAX_K)))
            qid = f"q{i:08d}"
            rows.append(
                (
                    qid,
                    self.snapshot,
                    industry,
                    self.industry_code(industry),
                    conf,
                    self.region_code.get(region),
                    SIZE_ORD.get((size or "").lower()),
                )
            )
            words.append(menu_tokens(_clean_str(get("menu"))))
        q = pd.DataFrame(
            rows,
            columns=[
                "restaurant_id",
                "snapshot",
                "industry",
                "industry_code",
                "label_confidence",
                "region_code",
                "size_ord",
            ],
        )
        q["region_code"] = q["region_code"].astype("Int64")
        q["size_ord"] = q["size_ord"].astype("Int64")
        return q, words, ks

    def features_for(self, requests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
        """Candidate feature rows for the requests (query ids q00000000, ...), plus queries and ks."""
        return self._features(requests, lambda cur, text: cur.execute(text).df())

    def _features(self, requests: pd.DataFrame, fetch):
        """(`fetch`(cursor, SQL of the feature rows sorted by query and product), queries, ks)."""
        q, words, ks = self._queries(requests)
        cur = self._con.cursor()  # its registered views are its own: requests never mix
        try:
            with self.index.candidate_features(cur, q, words) as features:
                got = fetch(cur, f"SELECT * FROM ({features}) ORDER BY restaurant_id, product_id")
        finally:
            cur.close()
        return got, q, ks

    def recommend(self, requests: pd.DataFrame) -> pd.DataFrame:
        """The top k of each request: score descending, ties by product id. Arrays, not pandas
        operations, past the features (a few ms of a single request's ~20)."""
        feats, q, ks = self._features(requests, lambda cur, text: cur.sql(text).to_arrow_table())
        if feats.num_rows == 0:
            return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
        x = feature_matrix(feats, self.features)
        # One request's rows gain nothing from OpenMP threads (which spin on a busy machine).
        score = np.asarray(self.booster.predict(x, num_threads=1 if len(x) < PARALLEL_ROWS else 0))
        qi = {qid: i for i, qid in enumerate(q["restaurant_id"])}
        request = np.array([qi[r] for r in feats.column("restaurant_id").to_pylist()])
        # Rows come sorted by request, then product id: the row number breaks score ties.
        order = np.lexsort((np.arange(len(score)), -score, request))
        request, score = request[order], score[order]
        first = np.flatnonzero(np.r_[True, request[1:] != request[:-1]])
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)])) + 1
        keep = rank <= np.asarray(ks)[request]
        idx, rank, score, order = request[keep], rank[keep], score[keep], order[keep]
        products = feats.column("product_id").take(order).to_pylist()
        ids = (
            requests["restaurant_id"].tolist()
            if "restaurant_id" in requests.columns
            else [None] * len(q)
        )
        rids = np.array([_clean_str(i) or "" for i in ids], dtype=object)
        return pd.DataFrame(
            {
                "request_index": idx.astype("int64"),
                "restaurant_id": rids[idx].tolist(),
                "industry": q["industry"].to_numpy()[idx],
                "label_confidence": q["label_confidence"].to_numpy(dtype="float64")[idx],
                "rank": rank.astype("int64"),
                "product_id": np.array(products, dtype=object),
                "name": [self.product_names.get(p) or "" for p in products],
                "score": score,
            }
        )


def server_for(artifacts: dict[str, str] | str | Path):
    """The server a registered version needs: a RankerServer, or a BaselineServer when the gate
    made a baseline champion (its meta.json says kind "baseline"). Same requests, same output."""
    from recsys_assets.ranking import baselines

    if not isinstance(artifacts, dict):
        base = Path(artifacts)
        meta = json.loads((base / META_FILE).read_text(encoding="utf-8"))
        if meta.get("kind") != baselines.KIND:
            return RankerServer(base)
        artifacts = {t: str(base / f"{t}.parquet") for t in (*baselines.TABLES, "products")}
        artifacts["meta"] = str(base / META_FILE)
    meta = json.loads(Path(artifacts["meta"]).read_text(encoding="utf-8"))
    if meta.get("kind") == baselines.KIND:
        return baselines.BaselineServer(artifacts)
    return RankerServer(artifacts)


def make_pyfunc():
    """The MLflow PythonModel wrapping a RankerServer (artefacts -> server; predict = recommend).

    Built on demand so importing this module (the CLI's fast path) never imports MLflow.
    """
    from mlflow.pyfunc import PythonModel

    class IndustryRankerPyfunc(PythonModel):
        def load_context(self, context):
            self.artifacts = dict(context.artifacts)
            self.server = server_for(self.artifacts)

        def predict(
            self, context, model_input: pd.DataFrame, params: dict | None = None
        ) -> pd.DataFrame:
            frame = (
                model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            )
            return self.server.recommend(frame)

    return IndustryRankerPyfunc()


MODEL_CODE = '''\
"""MLflow models-from-code entry point for the industry product ranker or a baseline (no pickle)."""
import mlflow

from recsys_assets.ranking.pyfunc_model import make_pyfunc

mlflow.models.set_model(make_pyfunc())
'''


def model_signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "restaurant_id", required=False),
            ColSpec("string", "industry", required=False),
            ColSpec("string", "name", required=False),
            ColSpec("string", "menu", required=False),
            ColSpec("string", "description", required=False),
            ColSpec("string", "region", required=False),
            ColSpec("string", "size", required=False),
            ColSpec("double", "label_confidence", required=False),
            ColSpec("long", "k", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("long", "request_index"),
            ColSpec("string", "restaurant_id"),
            ColSpec("string", "industry"),
            ColSpec("double", "label_confidence"),
            ColSpec("long", "rank"),
            ColSpec("string", "product_id"),
            ColSpec("string", "name"),
            ColSpec("double", "score"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["", "바삭치킨 역삼점"],
            "menu": ["", "후라이드치킨|양념치킨|치즈볼"],
            "industry": ["chicken", ""],
            "k": [5, 10],
        }
    )
