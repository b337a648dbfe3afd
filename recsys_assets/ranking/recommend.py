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

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    "write_recommendations",
]
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


def compiled_cache_dir(settings: Settings) -> Path:
    """Where compiled boosters are cached (keyed by the model file's bytes): serving compiles the
    champion here, and `ranker_model` compiles the challenger here for its holdout scoring, so a
    rebuild's new champion is compiled once."""
    return settings.home / "cache" / "compiled"


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
    """(server, version): the champion's RankerServer (or BaselineServer when the gate made a
    baseline champion), cached in the process and on disk."""
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
            from recsys_assets.ranking.pyfunc_model import server_for

            try:
                _CACHE[key] = server_for(cached)
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
    it orders products for one restaurant and is not a probability of purchase. A baseline
    champion's score is 1 / rank.
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
    # A baseline's score is already in (0, 1] (1 / rank); a ranker's raw score is unbounded.
    unit = float if _is_baseline(server) else _unit
    ind = str(out["industry"].iloc[0]) if len(out) else (industry or "")
    conf = float(out["label_confidence"].iloc[0]) if len(out) else 0.0
    return {
        "industry": ind,
        "label_confidence": conf,
        "model_version": version,
        "products": [
            {"product_id": p, "name": n, "score": round(unit(float(s)), 4)}
            for p, n, s in zip(out["product_id"], out["name"], out["score"], strict=True)
        ],
    }


# --------------------------------------------------------------------------------------------
# Set-based scoring of a whole restaurant base (the `recommendations` asset)
# --------------------------------------------------------------------------------------------

# Restaurants per LightGBM predict: with ~125 candidates each, a block of ~1M feature rows.
RESTAURANTS_PER_BATCH = 8_000
# Restaurants per request to a baseline champion's server (the pyfunc's own batch size).
BASELINE_RESTAURANTS_PER_BATCH = 2_000
_SERVING_DB = "rk_serving"  # in-memory database attached to the warehouse connection
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What Python's str.strip() removes: the pyfunc cleans request strings with it, so SQL trims the same.
_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


@contextmanager
def _serving_database(con: duckdb.DuckDBPyConnection, server) -> Iterator[tuple[str, str]]:
    """The model's serving snapshot as tables of an in-memory database attached to `con`, first on
    the search path, so the shared candidate-feature SQL reads the same rows the pyfunc serves from
    (the champion may be older than the warehouse's rk_snap_* tables). Detached on exit.
    Yields (that database, the warehouse's own catalog, quoted: name the tables to write with it).
    A baseline champion has no such tables (its server ranks from its own): the database only
    holds the work tables then."""
    from recsys_assets.ranking.pyfunc_model import TABLE_FILES

    db = _SERVING_DB
    name = con.execute("SELECT current_database()").fetchall()[0][0]
    home = '"' + name.replace('"', '""') + '"'
    con.execute(f"DETACH DATABASE IF EXISTS {db}")
    con.execute(f"ATTACH ':memory:' AS {db} (READ_WRITE)")  # also from a read-only warehouse
    try:
        for table in () if _is_baseline(server) else TABLE_FILES:
            if table != "products":  # names only; the warehouse's products stays visible
                _load_serving_table(con, f"{db}.{table}", server.artifacts[table])
        con.execute("SET search_path = $p", {"p": f"{db}.main,{home}.main"})
        yield db, home
    finally:
        con.execute("RESET search_path")
        con.execute(f"DETACH DATABASE IF EXISTS {db}")


def _load_serving_table(con, name: str, path: str) -> None:
    """A serving Parquet file as table `name`; its `snapshot` back to a DATE (the pandas export
    made it a TIMESTAMP, which every join against the queries' DATE would cast row by row)."""
    cols = [
        r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": path}).fetchall()
    ]
    fix = " REPLACE (CAST(snapshot AS DATE) AS snapshot)" if "snapshot" in cols else ""
    con.execute(f"CREATE TABLE {name} AS SELECT *{fix} FROM read_parquet($p)", {"p": path})


# Key columns the candidate-feature SQL only joins, groups and orders on: serving replaces them by
# integer codes (a code per distinct value, in the value's order), which DuckDB hashes and compares
# far faster than strings. Menu tokens stay text: the shared SQL matches a menu word against the
# known tokens it contains (`contains`, `length`), which needs the characters.
_CODED = ("product_id",)


def _code_keys(con, db: str) -> None:
    """Recode {db}'s tables for the feature SQL: every `product_id` and `token` column by the
    codes of {db}.product_id_codes / {db}.token_codes, and the queries' restaurant ids by their
    `seq` (rk_menu_tokens here; the blocks of rk_queries in _score_batches). Codes follow the
    values' order, so ties broken by product code are broken as by product id; equal values get
    equal codes and NULL stays NULL, so every join, UNION and GROUP BY pairs the same rows."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = $db", {"db": db}
        ).fetchall()
    ]
    columns = {t: [r[0] for r in con.execute(f"DESCRIBE {db}.{t}").fetchall()] for t in tables}
    con.execute(
        f"CREATE OR REPLACE TABLE {db}.rk_menu_tokens AS SELECT q.seq AS restaurant_id, t.token "
        f"FROM {db}.rk_menu_tokens t JOIN {db}.all_queries q USING (restaurant_id)"
    )
    for key in _CODED:
        users = [t for t in tables if key in columns[t] and t.startswith("rk_")]
        values = " UNION ".join(f"SELECT {key} FROM {db}.{t}" for t in users)
        con.execute(
            f"CREATE TABLE {db}.{key}_codes AS SELECT {key}, "
            f"CAST(row_number() OVER (ORDER BY {key}) AS INTEGER) AS code FROM ({values}) "
            f"WHERE {key} IS NOT NULL"
        )
        for t in users:
            con.execute(
                f"CREATE OR REPLACE TABLE {db}.{t} AS SELECT x.* REPLACE (c.code AS {key}) "
                f"FROM {db}.{t} x LEFT JOIN {db}.{key}_codes c USING ({key})"
            )


def _serving_queries(con, db: str, server, restaurant_ids: list[str] | None) -> int:
    """{db}.all_queries: every restaurant as a pyfunc query row (same cleaning, labels, codes),
    numbered by `seq` for batching; {db}.rk_menu_tokens: their menu tokens. Returns the count."""
    import pandas as pd

    from recsys_assets import taxonomy
    from recsys_assets.ranking import sql
    from recsys_assets.ranking.dataset import SIZE_ORD, menu_tokens

    con.execute(
        f"CREATE TABLE {db}.requests AS "
        + sql.load("restaurant_requests", {"latest_labels": sql.load("latest_labels")}),
        {"ids": restaurant_ids},
    )
    codes = list(taxonomy.INDUSTRY_CODES)
    # A restaurant without a valid label is labeled from its text, as the pyfunc does (rare: the
    # pipeline labels every restaurant first).
    todo = con.execute(
        f"SELECT restaurant_id, name, menu, description FROM {db}.requests "
        "WHERE NOT list_contains($codes, coalesce(trim(industry, $ws), ''))",
        {"codes": codes, "ws": _WHITESPACE},
    ).fetchall()
    labels = [(rid, *server._label(*(_clean(v) for v in rest))) for rid, *rest in todo]
    industries = sorted({*codes, *(ind for _, ind, _ in labels)})
    regions = list(server.region_code)
    _small_table(
        con,
        f"{db}.labeled",
        {
            "restaurant_id": ("VARCHAR", [r[0] for r in labels]),
            "industry": ("VARCHAR", [r[1] for r in labels]),
            "confidence": ("DOUBLE", [r[2] for r in labels]),
        },
    )
    _small_table(
        con,
        f"{db}.ind_codes",
        {
            "industry": ("VARCHAR", industries),
            "code": ("BIGINT", [server.industry_code(i) for i in industries]),
        },
    )
    _small_table(
        con,
        f"{db}.region_codes",
        {
            "region": ("VARCHAR", regions),
            "code": ("BIGINT", [server.region_code[r] for r in regions]),
        },
    )
    _small_table(
        con,
        f"{db}.size_codes",
        {
            "size": ("VARCHAR", list(SIZE_ORD)),
            "code": ("BIGINT", list(SIZE_ORD.values())),
        },
    )
    sql.run(
        con,
        "serving_queries",
        {"snapshot": server.snapshot, "ws": _WHITESPACE, "unknown": server.industry_code(None)},
    )
    rows = con.execute(f"SELECT restaurant_id, menu FROM {db}.requests").fetchall()
    tokens = pd.DataFrame(
        [(rid, t) for rid, menu in rows for t in menu_tokens(_clean(menu))],
        columns=["restaurant_id", "token"],
    ).astype(object)
    con.register("rk_srv_tokens", tokens)
    con.execute(f"CREATE TABLE {db}.rk_menu_tokens AS SELECT DISTINCT * FROM rk_srv_tokens")
    con.unregister("rk_srv_tokens")
    return int(con.execute(f"SELECT count(*) FROM {db}.all_queries").fetchall()[0][0])


def _small_table(con, name: str, columns: dict[str, tuple[str, list]]) -> None:
    """CREATE TABLE `name` from equal-length Python lists (typed even when empty)."""
    select = ", ".join(f"unnest(CAST(${c} AS {t}[])) AS {c}" for c, (t, _) in columns.items())
    con.execute(f"CREATE TABLE {name} AS SELECT {select}", {c: v for c, (_, v) in columns.items()})


def _clean(v) -> str | None:
    """The pyfunc's cleaning of a request string: stripped, empty as None."""
    s = None if v is None else str(v).strip()
    return s or None


def _score_batches(con, db: str, server, k: int, n: int, threads: int, cache: Path) -> None:
    """{db}.top_k: candidates + features by the shared SQL per block of restaurants, one predict
    per block (the booster compiled, see ranking/compiled.py; else LightGBM's), the best k of
    each restaurant kept by a window function; then the codes back to ids in {db}.top_k_named.
    The compile (when the first block's rows times the blocks reach COMPILE_MIN_ROWS, or the
    booster is cached), then each block's predict (C calls without the GIL), run in a second
    thread while DuckDB builds the next block's features."""
    from concurrent.futures import ThreadPoolExecutor

    from recsys_assets.ranking.compiled import compile_booster
    from recsys_assets.ranking.token_features import candidate_features

    feats = list(server.features)
    cols = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in feats)
    con.execute(
        f"CREATE TABLE {db}.top_k (restaurant_id BIGINT, product_id INTEGER, score DOUBLE, "
        "rank BIGINT)"
    )
    with ThreadPoolExecutor(1, thread_name_prefix="rk-predict") as pool:
        scorer = None
        pending = None
        for lo in range(0, n, RESTAURANTS_PER_BATCH):
            con.execute(
                f"CREATE OR REPLACE TABLE {db}.rk_queries AS SELECT * EXCLUDE (restaurant_id, seq), "
                f"seq AS restaurant_id FROM {db}.all_queries WHERE seq >= $lo AND seq < $hi",
                {"lo": lo, "hi": lo + RESTAURANTS_PER_BATCH},
            )
            with candidate_features(con, server.params) as features:
                block = con.sql(
                    f"SELECT restaurant_id, product_id, {cols} FROM ({features})"
                ).to_arrow_table()
            if scorer is None:  # compiled only when the rows (as many per block) repay it
                rows = block.num_rows * -(-n // RESTAURANTS_PER_BATCH)
                booster_file = server.artifacts["booster"]
                scorer = _Scorer(
                    server.booster, pool.submit(compile_booster, booster_file, cache, rows)
                )
            if pending is not None:
                _keep_top_k(con, db, k, pending.result())
                pending = None
            if block.num_rows:
                pending = pool.submit(_predict_block, scorer, block, feats, threads)
            del block
        if pending is not None:
            _keep_top_k(con, db, k, pending.result())
    con.execute(
        f"CREATE VIEW {db}.top_k_named AS SELECT q.restaurant_id, c.product_id, t.score, t.rank "
        f"FROM {db}.top_k t JOIN {db}.all_queries q ON q.seq = t.restaurant_id "
        f"JOIN {db}.product_id_codes c ON c.code = t.product_id"
    )


class _Scorer:
    """The compiled booster once it is compiled and checked against LightGBM on the first block,
    else LightGBM's predict. Called from the one predict thread only."""

    def __init__(self, booster, compiled) -> None:
        self.booster, self._compiled = booster, compiled
        self._use: Any = None  # the compiled predict, False (LightGBM), or None (not decided)

    def __call__(self, x, threads: int):
        from recsys_assets.ranking.compiled import checked

        if self._use is None:
            fast = self._compiled.result()
            self._use = fast if checked(fast, self.booster, x) else False
        if self._use:
            return self._use(x, threads)
        return self.booster.predict(x, num_threads=threads)


def _predict_block(scorer: _Scorer, block, feats: list[str], threads: int):
    """(restaurant, product code, score) of one block: its features as one float64 matrix (NULL
    -> NaN, as the pyfunc's float64 cast), one predict."""
    import pyarrow as pa

    from recsys_assets.ranking.compiled import feature_matrix

    x = feature_matrix(block, feats)
    return pa.table(
        {
            "restaurant_id": block.column("restaurant_id"),
            "product_id": block.column("product_id"),
            "score": scorer(x, threads),
        }
    )


def _keep_top_k(con, db: str, k: int, scored) -> None:
    """The best k rows of each restaurant of a scored block into {db}.top_k, in the pyfunc's
    order: score descending, ties by product id (codes are in product id order)."""
    con.register("rk_srv_scored", scored)
    try:
        con.execute(
            f"INSERT INTO {db}.top_k SELECT *, row_number() OVER (PARTITION BY restaurant_id "
            "ORDER BY score DESC, product_id) AS rank FROM rk_srv_scored QUALIFY rank <= $k",
            {"k": k},
        )
    finally:
        con.unregister("rk_srv_scored")


def _is_baseline(server) -> bool:
    """Whether `server` serves a baseline the gate made champion (a ranked list, no booster)."""
    from recsys_assets.ranking.baselines import KIND

    return getattr(server, "meta", {}).get("kind") == KIND


def _baseline_top_k(con, db: str, server, k: int, restaurant_ids: list[str] | None) -> None:
    """{db}.top_k from a baseline champion: its server (the list ranked by SQL over its own tables)
    answers the warehouse's requests in blocks, exactly as the pyfunc answers them."""
    import pandas as pd

    from recsys_assets.ranking import sql

    con.execute(
        f"CREATE TABLE {db}.requests AS "
        + sql.load("restaurant_requests", {"latest_labels": sql.load("latest_labels")}),
        {"ids": restaurant_ids},
    )
    con.execute(
        f"CREATE TABLE {db}.top_k (restaurant_id VARCHAR, product_id VARCHAR, score DOUBLE, "
        "rank BIGINT)"
    )
    n = con.execute(f"SELECT count(*) FROM {db}.requests").fetchall()[0][0]
    for lo in range(0, n, BASELINE_RESTAURANTS_PER_BATCH):
        block = con.execute(
            f"SELECT * FROM {db}.requests ORDER BY restaurant_id LIMIT $n OFFSET $lo",
            {"n": BASELINE_RESTAURANTS_PER_BATCH, "lo": lo},
        ).df()
        block["k"] = k
        out = server.recommend(block)
        ranked = pd.DataFrame(
            {c: out[c] for c in ("restaurant_id", "product_id", "score", "rank")}
        ).astype({"restaurant_id": object, "product_id": object})
        con.register("rk_srv_scored", ranked)
        con.execute(f"INSERT INTO {db}.top_k SELECT * FROM rk_srv_scored")
        con.unregister("rk_srv_scored")


@contextmanager
def _scored(
    con, k, server, model_version, settings, restaurant_ids
) -> Iterator[tuple[str, str, str]]:
    """(qualified top-k table, model version, warehouse catalog) while the serving database is
    attached (the search path puts it first: name the warehouse's tables with the catalog)."""
    from recsys_assets.config import load_settings
    from recsys_assets.ranking.pyfunc_model import MAX_K

    settings = settings or load_settings()
    if server is None:
        server, model_version = load_champion(settings)
    k = max(1, min(int(k), MAX_K))
    ids = None if restaurant_ids is None else [str(i) for i in restaurant_ids]
    threads = max(1, int(settings.duckdb_threads))
    with _serving_database(con, server) as (db, home):
        if _is_baseline(server):
            server.set_threads(threads)
            _baseline_top_k(con, db, server, k, ids)
            yield f"{db}.top_k", str(model_version or "unregistered"), home
        else:
            n = _serving_queries(con, db, server, ids)
            _code_keys(con, db)
            _score_batches(con, db, server, k, n, threads, compiled_cache_dir(settings))
            yield f"{db}.top_k_named", str(model_version or "unregistered"), home


def write_recommendations(
    con: duckdb.DuckDBPyConnection,
    table: str = "recommendations",
    k: int = 10,
    server=None,
    model_version: str | None = None,
    settings: Settings | None = None,
    restaurant_ids: list[str] | None = None,
) -> str:
    """Top-k per restaurant for ALL restaurants (or `restaurant_ids`) into warehouse table `table`
    (replaced in one transaction): restaurant_id, rank, product_id, score, model_version.

    Set-based: queries, features (the shared candidate-feature SQL over the model's own serving
    snapshot, so the result is what the served model answers), top-k in DuckDB; Python only runs
    the menu tokenizer and one LightGBM predict per ~1M candidate rows. A baseline champion
    (`BaselineServer`) ranks the requests in blocks with its own SQL. `server` (either kind)
    overrides the champion, e.g. to preview a challenger. Returns the model version written.
    """
    from recsys_assets.warehouse.tables import transaction

    if not _IDENT.fullmatch(table):
        raise ValueError(f"not a table name: {table!r}")
    scored = _scored(con, k, server, model_version, settings, restaurant_ids)
    with scored as (top, version, home), transaction(con):
        con.execute(
            f"CREATE OR REPLACE TABLE {home}.main.{table} AS SELECT restaurant_id, "
            "CAST(rank AS INTEGER) AS rank, product_id, score, $v AS model_version "
            f"FROM {top} ORDER BY restaurant_id, rank",
            {"v": version},
        )
    return version


def recommend_for_restaurants(
    con: duckdb.DuckDBPyConnection,
    k: int = 10,
    server=None,
    model_version: str | None = None,
    settings: Settings | None = None,
    restaurant_ids: list[str] | None = None,
) -> pd.DataFrame:
    """`write_recommendations` as a DataFrame (restaurant_id, rank, product_id, score,
    model_version), leaving the warehouse unchanged."""
    with _scored(con, k, server, model_version, settings, restaurant_ids) as (top, version, _):
        out = con.execute(
            "SELECT restaurant_id, rank, product_id, score, $v AS model_version "
            f"FROM {top} ORDER BY restaurant_id, rank",
            {"v": version},
        ).df()
    return out.astype({"rank": "int64", "score": "float64"})
