"""Recommendations from the champion model: one restaurant (CLI) or all of them (the asset).

Imports of MLflow/LightGBM/DuckDB happen inside the functions: the CLI imports this module on every
start and must stay fast (< 3 s cold). Importing MLflow and opening its sqlite store alone costs ~2 s,
so the champion is resolved in two steps:

1. fast path: read the `champion` alias straight from the sqlite registry (read-only, stdlib sqlite3)
   and load that version's serving artefacts from a local cache under $RECSYS_HOME/cache/ranker;
2. otherwise (first use of a version, a non-sqlite tracking URI, or any surprise in the registry
   schema): `mlflow.pyfunc.load_model("models:/industry-product-ranker/<version>")`, then fill the
   cache. The cache key includes the run id, so a recreated registry can never serve a stale model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from recsys_assets.ranking.names import CHAMPION, CHAMPION_URI, MODEL_NAME

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

    from recsys_assets.config import Settings

__all__ = [
    "CHAMPION_URI",
    "NoChampionError",
    "load_champion",
    "recommend",
    "recommend_for_restaurants",
]
BATCH_SIZE = 2000
_CACHE: dict[tuple[str, str, str], object] = {}


class NoChampionError(LookupError):
    """The registry has no champion yet: train and promote a model first."""


def _fast_champion(settings: Settings) -> tuple[str, str] | None:
    """(version, run_id) of the champion read from the sqlite registry, or None to use MLflow."""
    import sqlite3

    uri = settings.mlflow_tracking_uri
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :])
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT v.version, v.run_id FROM registered_model_aliases a "
                "JOIN model_versions v ON v.name = a.name AND v.version = a.version "
                "WHERE a.name = ? AND a.alias = ?",
                (MODEL_NAME, CHAMPION),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    if len(rows) != 1 or not rows[0][1]:
        return None
    return str(rows[0][0]), str(rows[0][1])


def _cache_dir(settings: Settings, version: str, run_id: str) -> Path:
    return settings.home / "cache" / "ranker" / f"{MODEL_NAME}-v{version}-{run_id}"


def _fill_cache(target: Path, artifacts: dict[str, str]) -> None:
    """Copy the serving artefacts (flat files) into `target` atomically; best effort."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for src in artifacts.values():
            shutil.copy2(src, tmp / Path(src).name)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def load_champion(settings: Settings | None = None):
    """(server, version): the champion's RankerServer, cached in the process and on disk."""
    from recsys_assets.config import load_settings

    settings = settings or load_settings()
    fast = _fast_champion(settings)
    if fast is not None:
        version, run_id = fast
        key = (settings.mlflow_tracking_uri, version, run_id)
        if key in _CACHE:
            return _CACHE[key], version
        cached = _cache_dir(settings, version, run_id)
        if (cached / "meta.json").exists():
            from recsys_assets.ranking.pyfunc_model import RankerServer

            try:
                _CACHE[key] = RankerServer(cached)
                return _CACHE[key], version
            except Exception:  # noqa: BLE001 - a damaged cache falls back to the registry
                shutil.rmtree(cached, ignore_errors=True)

    from recsys_assets.ranking.registry import configure_mlflow

    client = configure_mlflow(settings)
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException as exc:
        raise NoChampionError(
            f"no '{CHAMPION}' alias on registered model {MODEL_NAME}: train and promote a ranker first"
        ) from exc
    version, run_id = str(mv.version), str(mv.run_id or "norun")
    key = (settings.mlflow_tracking_uri, version, run_id)
    if key not in _CACHE:
        import mlflow.pyfunc

        wrapper = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}").unwrap_python_model()
        _CACHE[key] = wrapper.server
        _fill_cache(_cache_dir(settings, version, run_id), wrapper.artifacts)
    return _CACHE[key], version


def _unit(score: float) -> float:
    """The logistic function: any real score to (0, 1), order kept."""
    import math

    return 1.0 / (1.0 + math.exp(-max(min(score, 50.0), -50.0)))


def recommend(
    name: str,
    menu: str,
    k: int = 10,
    industry: str | None = None,
    settings: Settings | None = None,
    description: str | None = None,
) -> dict:
    """Top-k products for one (new) restaurant from the champion.

    Returns {"industry", "label_confidence", "model_version", "products": [{"product_id", "name", "score"}]}.
    Without `industry`, the restaurant is labeled from name + menu by the offline labeler.
    `score` is the ranker's raw score through the logistic function: in (0, 1) and in the same
    order (a LambdaRank score is unbounded and often negative, which reads as "bad" to a user);
    it orders products for one restaurant and is not a probability of purchase.
    """
    import pandas as pd

    server, version = load_champion(settings)
    req = pd.DataFrame(
        [
            {
                "name": name or "",
                "menu": menu or "",
                "industry": industry or "",
                "description": description or "",
                "k": int(k),
            }
        ]
    )
    out = server.recommend(req)
    ind = str(out["industry"].iloc[0]) if len(out) else (industry or "")
    conf = float(out["label_confidence"].iloc[0]) if len(out) else 0.0
    return {
        "industry": ind,
        "label_confidence": conf,
        "model_version": version,
        "products": [
            {"product_id": p, "name": n, "score": round(_unit(float(s)), 4)}
            for p, n, s in zip(out["product_id"], out["name"], out["score"], strict=True)
        ],
    }


def recommend_for_restaurants(
    con: duckdb.DuckDBPyConnection,
    k: int = 10,
    server=None,
    model_version: str | None = None,
    settings: Settings | None = None,
    restaurant_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Top-k per restaurant for ALL restaurants (or `restaurant_ids`), scored by the champion.

    Reads restaurants + restaurant_industry from `con`; features come from the model's own serving
    snapshot, so the result is exactly what the served model would answer. `server` (a RankerServer)
    overrides the champion, e.g. to preview a challenger. Returns DataFrame(restaurant_id, rank,
    product_id, score, model_version).
    """
    import pandas as pd

    from recsys_assets.config import load_settings
    from recsys_assets.ranking import sql

    if server is None:
        server, model_version = load_champion(settings)
    server.set_threads((settings or load_settings()).duckdb_threads)
    ids = None if restaurant_ids is None else list(restaurant_ids)
    reqs = sql.run(
        con, "restaurant_requests", {"ids": ids}, {"latest_labels": sql.load("latest_labels")}
    ).df()
    reqs["k"] = int(k)
    parts = []
    for start in range(0, len(reqs), BATCH_SIZE):
        batch = reqs.iloc[start : start + BATCH_SIZE].reset_index(drop=True)
        parts.append(server.recommend(batch))
    cols = ["restaurant_id", "rank", "product_id", "score", "model_version"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    out["model_version"] = str(model_version or "unregistered")
    return out[cols].astype({"rank": "int64", "score": "float64"})
