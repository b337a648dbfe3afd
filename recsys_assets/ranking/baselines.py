"""The baselines the ranker must beat, each servable for a new restaurant like the ranker itself.

A baseline is what we would ship without a model. Each entry of `BASELINES` is one ranked list built
from precomputed tables (`baseline_tables`: bl_* frames as of a snapshot) and one SQL query
(`sql/baseline_rank.sql` around the entry's own `primary` list; the two menu baselines build their
list and padding in numpy instead, `menu_baselines`, the same rows), so the same code ranks the
holdout offline (tables as of the cutoff) and serves a request (tables as of the serving snapshot,
exported as Parquet into a pyfunc, `BaselineServer`). A request needs only (name, menu, industry).

- global_popularity: products by the share of all restaurants that bought them;
- industry_popularity: `industry_top_products` as of the snapshot (the project's first baseline);
- industry_new_popularity: the industry's restaurants' first-30-day purchases (the window the
  holdout's truth covers; the window starts at sign-up);
- menu_token_association: industry first-30-day popularity re-weighted by the menu-token association
  list (token -> product lift learned from earlier restaurants, rk_snap_token_prod): the score is
  log P(p | industry) + the largest log lift(token, p) over the menu's tokens (a sum over tokens
  over-counts menus that list many related dishes);
- menu_knn: the first-30-day baskets of the K most similar earlier restaurants by TF-IDF cosine over
  menu tokens (`dataset.menu_tokens`), weighted by similarity. Similarities and scores are rounded
  to 9 decimals: DuckDB's parallel sums add in a varying order, and their last-bit differences
  reordered tied neighbours and products from one run to the next (ties now go by id).
Every list is padded to the same depth (industry first-window popularity, industry popularity, global
popularity) so every method is scored at the same depth. The three popularity lists (and their
padding) depend on the industry alone: they are ranked once per industry and copied to its queries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys_assets import taxonomy
from recsys_assets.ranking import menu_baselines as mb
from recsys_assets.ranking import sql
from recsys_assets.ranking.dataset import HORIZON_DAYS, menu_tokens

if TYPE_CHECKING:
    import duckdb

    from recsys_assets.labeling.offline import OfflineLabeler

KIND = "baseline"  # meta.json "kind" of a baseline pyfunc (a ranker's has none)
DEPTH = 50
KNN_NEIGHBOURS = 50
KNN_POOL = 5_000  # the latest restaurants with a finished first window (recent baskets, small join)
KNN_MAX_DF = 0.2  # tokens on more than this share of the pool's menus are dropped
TOKEN_PRIOR_DEPTH = 100  # industry first-window list the token scores re-weight
TABLES = ("bl_prod", "bl_ind", "bl_token_prod", "bl_knn_tok", "bl_knn_buy")
META_FILE = "meta.json"


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    # SQL: restaurant_id, product_id, key (higher first) for the rows of bl_q; or "" when `own`
    # builds the list in numpy (menu_baselines: the two menu baselines)
    primary: str
    pad_new: bool = True
    pad_ind: bool = True
    per_industry: bool = False  # the list depends on the industry alone (not on the menu)
    own: Callable[[mb.MenuTables, mb.Queries, int], tuple[np.ndarray, np.ndarray]] | None = None


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline(
            "global_popularity",
            "products by the share of all restaurants that bought them",
            "SELECT q.restaurant_id, p.product_id, -p.global_rank AS key "
            "FROM bl_q q CROSS JOIN bl_prod p WHERE p.global_rank <= $depth",
            pad_new=False,
            pad_ind=False,
            per_industry=True,
        ),
        Baseline(
            "industry_popularity",
            "industry_top_products of the restaurant's industry",
            "SELECT q.restaurant_id, i.product_id, -i.ind_rank AS key "
            "FROM bl_q q JOIN bl_ind i USING (industry) WHERE i.ind_rank <= $depth",
            pad_new=False,
            per_industry=True,
        ),
        Baseline(
            "industry_new_popularity",
            "what the industry's restaurants bought in their first 30 days",
            "SELECT q.restaurant_id, i.product_id, -i.new_rank AS key "
            "FROM bl_q q JOIN bl_ind i USING (industry) WHERE i.new_rank <= $depth",
            per_industry=True,
        ),
        Baseline(
            "menu_token_association",
            "industry first-30-day popularity x the menu tokens' strongest product lift",
            "",
            own=lambda t, q, depth: mb.token_lists(t, q, TOKEN_PRIOR_DEPTH, depth),
        ),
        Baseline(
            "menu_knn",
            f"first-30-day baskets of the {KNN_NEIGHBOURS} most similar menus (TF-IDF cosine)",
            "",
            own=lambda t, q, depth: mb.knn_lists(t, q, KNN_NEIGHBOURS, depth),
        ),
    )
}


def table_params(snapshot: date, horizon_days: int = HORIZON_DAYS) -> dict:
    return {
        "snapshot": snapshot,
        "horizon_days": horizon_days,
        "knn_pool": KNN_POOL,
        "knn_max_df": KNN_MAX_DF,
    }


def baseline_tables(
    con: duckdb.DuckDBPyConnection, snapshot: date, horizon_days: int = HORIZON_DAYS
) -> dict[str, pd.DataFrame]:
    """The bl_* tables as of `snapshot`, read from the ranking dataset's rk_* tables."""
    params = table_params(snapshot, horizon_days)
    frags = {"knn_pool": sql.load("baseline_knn_pool")}
    out = {}
    for table in TABLES:
        name = "baseline_" + table.removeprefix("bl_")
        out[table] = sql.run(con, name, params, frags).df()
    return out


def rank_params(depth: int) -> dict:
    return {
        "depth": int(depth),
        "neighbours": KNN_NEIGHBOURS,
        "token_prior_depth": TOKEN_PRIOR_DEPTH,
    }


class BaselineScorer:
    """The bl_* tables in a private in-memory DuckDB; ranks any baseline for a batch of queries."""

    def __init__(self, tables: Mapping[str, pd.DataFrame | str | Path], threads: int = 1):
        import duckdb

        self._con = duckdb.connect(":memory:")
        self._con.execute(f"SET threads TO {max(1, int(threads))}")
        for table in TABLES:
            src = tables[table]
            if isinstance(src, pd.DataFrame):
                self._con.register("_bl_src", src)
                self._con.execute(f"CREATE TABLE {table} AS SELECT * FROM _bl_src")
                self._con.unregister("_bl_src")
            else:
                self._con.execute(
                    f"CREATE TABLE {table} AS SELECT * FROM read_parquet($p)", {"p": str(src)}
                )
        self._products, self._tokens = _code_ids(self._con)
        self._lock = threading.Lock()
        self._menu: mb.MenuTables | None = None

    def _menu_tables(self) -> mb.MenuTables:
        """The coded tables as arrays, loaded on first use (a popularity baseline needs none)."""
        with self._lock:
            if self._menu is None:
                self._menu = mb.load_tables(self._con, len(self._products), len(self._tokens))
            return self._menu

    def set_threads(self, threads: int) -> None:
        with self._lock:
            self._con.execute(f"SET threads TO {max(1, int(threads))}")

    def rank(
        self, name: str, queries: pd.DataFrame, tokens: pd.DataFrame, depth: int = DEPTH
    ) -> pd.DataFrame:
        """DataFrame(restaurant_id, product_id, rank) for queries (restaurant_id, industry) with
        menu tokens (restaurant_id, token)."""
        b = BASELINES[name]
        text = sql.load("baseline_rank", {"primary": b.primary})
        params = {**rank_params(depth), "pad_new": b.pad_new, "pad_ind": b.pad_ind}
        # The SQL runs on integer codes (sorted like the ids, so every ORDER BY and tie-break is
        # the ids' own); joins, windows and groups on integers cost a fraction of strings'.
        q_codes, q_ids = pd.factorize(queries["restaurant_id"].astype(str), sort=True)
        industries = queries["industry"].astype(object)
        if b.per_industry and 0 < len(q_ids) == len(queries):
            # One query per industry, its ranking copied to every query of that industry.
            ind_codes, inds = pd.factorize(industries, use_na_sentinel=False)
            one = pd.DataFrame(
                {"restaurant_id": np.arange(len(inds)), "industry": _nulls_as_none(inds)}
            )
            none = np.zeros(0, dtype=np.int64)
            out = self._run(text, params, one, pd.DataFrame({"restaurant_id": none, "token": none}))
            order = np.empty(len(q_codes), dtype=np.int64)
            order[q_codes] = np.arange(len(q_codes))
            out = _broadcast(out, ind_codes[order])  # query code -> its industry's rows
        else:
            t_query = pd.Index(q_ids).get_indexer(pd.Index(tokens["restaurant_id"].astype(str)))
            known = t_query >= 0  # tokens of a restaurant not queried rank nothing
            coded_q = pd.DataFrame({"restaurant_id": q_codes, "industry": industries})
            coded_tok = pd.DataFrame(
                {
                    "restaurant_id": t_query[known],
                    "token": self._tokens.get_indexer(pd.Index(tokens["token"].astype(str)))[known],
                }
            )
            if b.own is None:
                out = self._run(text, params, coded_q, coded_tok)
            else:
                out = self._rank_own(b, coded_q, coded_tok, int(depth))
        return pd.DataFrame(
            {
                "restaurant_id": pd.Categorical.from_codes(out["restaurant_id"], q_ids),
                "product_id": pd.Categorical.from_codes(out["product_id"], self._products),
                "rank": out["rank"],
            }
        )

    def _rank_own(
        self, b: Baseline, q: pd.DataFrame, tok: pd.DataFrame, depth: int
    ) -> pd.DataFrame:
        """A numpy-ranked baseline (`b.own`) padded as baseline_rank.sql pads (`mb.pad`)."""
        if b.own is None:
            raise ValueError(f"{b.name} is ranked by its SQL")
        tables = self._menu_tables()
        codes = q["restaurant_id"].to_numpy(dtype=np.int64)
        industry = np.full(int(codes.max(initial=-1)) + 1, -1, dtype=np.int64)
        industry[codes] = mb.industry_index(tables, q["industry"])
        queries = mb.Queries(
            n=len(industry),
            industry=industry,
            tok_query=tok["restaurant_id"].to_numpy(dtype=np.int64),
            tok_token=tok["token"].to_numpy(dtype=np.int64),
        )
        return mb.pad(tables, queries, b.own(tables, queries, depth), depth, b.pad_new, b.pad_ind)

    def _run(self, text: str, params: dict, q: pd.DataFrame, tok: pd.DataFrame) -> pd.DataFrame:
        cur = self._con.cursor()
        try:
            cur.register("bl_q", q)
            cur.register("bl_q_tok", tok)
            return cur.execute(text, sql.params_for(text, params)).df()
        finally:
            cur.close()


def _nulls_as_none(values) -> np.ndarray:
    """An object array with every missing value (NaN, NA, None) as None: NULL in DuckDB."""
    arr = np.asarray(values, dtype=object)
    arr[pd.isna(arr)] = None
    return arr


def _broadcast(ranked: pd.DataFrame, group_of: np.ndarray) -> pd.DataFrame:
    """Rows of `ranked` (restaurant_id = a group code, in (group, rank) order) repeated for every
    query code i (0..n-1) of group `group_of[i]`, in (query, rank) order as the SQL returns them."""
    groups = ranked["restaurant_id"].to_numpy()
    n_groups = int(group_of.max(initial=-1)) + 1
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lengths = counts[group_of]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    idx = np.arange(lengths.sum()) - np.repeat(offsets - starts[group_of], lengths)
    return pd.DataFrame(
        {
            "restaurant_id": np.repeat(np.arange(len(group_of), dtype=np.int32), lengths),
            "product_id": ranked["product_id"].to_numpy()[idx],
            "rank": ranked["rank"].to_numpy()[idx],
        }
    )


def _code_ids(con: duckdb.DuckDBPyConnection) -> tuple[pd.Index, pd.Index]:
    """Replace the bl_* tables' product ids, token strings and kNN neighbour ids by integer codes
    numbered in sorted order; (product ids, tokens) by code, to decode results and code queries."""
    ids = {
        "product_id": ("bl_prod", "bl_ind", "bl_token_prod", "bl_knn_buy"),
        "token": ("bl_token_prod", "bl_knn_tok"),
        "restaurant_id": ("bl_knn_tok", "bl_knn_buy"),
    }
    by_code = {}
    for col, tables in ids.items():
        union = " UNION ".join(f"SELECT {col} FROM {t}" for t in tables)
        con.execute(
            f"CREATE TABLE bl_code AS SELECT {col} AS id, "
            f"CAST(row_number() OVER (ORDER BY {col}) - 1 AS INTEGER) AS code FROM ({union})"
        )
        for t in tables:
            con.execute(
                f"CREATE OR REPLACE TABLE {t} AS SELECT t.* REPLACE (c.code AS {col}) "
                f"FROM {t} t JOIN bl_code c ON c.id = t.{col}"
            )
        by_code[col] = pd.Index(
            con.execute("SELECT id FROM bl_code ORDER BY code").fetchnumpy()["id"], dtype=object
        )
        con.execute("DROP TABLE bl_code")
    return by_code["product_id"], by_code["token"]


def holdout_rankings(
    con: duckdb.DuckDBPyConnection, dataset, split: str = "test", depth: int = DEPTH
) -> dict[str, pd.DataFrame]:
    """Every baseline's ranking of `split`'s queries, with tables as of the dataset's cutoff."""
    threads = con.execute("SELECT current_setting('threads')").fetchone()
    scorer = BaselineScorer(
        baseline_tables(con, dataset.cutoff, dataset.config.horizon_days),
        threads=int(threads[0]) if threads else 1,
    )
    qs = con.execute(
        "SELECT restaurant_id, industry FROM rk_queries WHERE split = $s", {"s": split}
    ).df()
    toks = con.execute(
        "SELECT t.restaurant_id, t.token FROM rk_menu_tokens t "
        "JOIN rk_queries q USING (restaurant_id) WHERE q.split = $s",
        {"s": split},
    ).df()
    return {name: scorer.rank(name, qs, toks, depth) for name in BASELINES}


def export_baseline(
    con: duckdb.DuckDBPyConnection, name: str, dataset, out_dir: str | Path
) -> dict[str, str]:
    """A baseline's serving artefacts (bl_* Parquet as of the serving snapshot, products, meta.json)."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}: one of {', '.join(BASELINES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    tables = baseline_tables(con, dataset.serving_snapshot, dataset.config.horizon_days)
    tables["products"] = con.execute(
        "SELECT product_id, name FROM products ORDER BY product_id"
    ).df()
    for table, frame in tables.items():
        frame.to_parquet(out / f"{table}.parquet", index=False)
        paths[table] = str(out / f"{table}.parquet")
    meta = {
        "kind": KIND,
        "baseline": name,
        "description": BASELINES[name].description,
        "serving_snapshot": str(dataset.serving_snapshot),
        "cutoff": str(dataset.cutoff),
        "industries": list(dataset.industries),
        "knn": {"neighbours": KNN_NEIGHBOURS, "pool": KNN_POOL, "max_df": KNN_MAX_DF},
    }
    (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    paths["meta"] = str(out / META_FILE)
    return paths


class BaselineServer:
    """Serves one baseline with the ranker pyfunc's input and output columns (pyfunc_model)."""

    def __init__(self, artifacts: dict[str, str]):
        self.meta = json.loads(Path(artifacts["meta"]).read_text(encoding="utf-8"))
        self.name = self.meta["baseline"]
        self.scorer = BaselineScorer({t: artifacts[t] for t in TABLES})
        names = pd.read_parquet(artifacts["products"])
        self.product_names = dict(zip(names["product_id"], names["name"], strict=True))
        self._labeler: OfflineLabeler | None = None

    def set_threads(self, threads: int) -> None:
        self.scorer.set_threads(threads)

    def _industry(self, rec: dict) -> tuple[str, float]:
        from recsys_assets.ranking.pyfunc_model import _clean_str

        industry = _clean_str(rec.get("industry"))
        conf = rec.get("label_confidence")
        conf = None if conf is None or pd.isna(conf) else float(conf)
        if industry in taxonomy.INDUSTRY_CODES:
            return industry, 1.0 if conf is None else conf
        if self._labeler is None:
            from recsys_assets.labeling.offline import OfflineLabeler

            self._labeler = OfflineLabeler()
        pred = self._labeler.predict(
            _clean_str(rec.get("name")) or "",
            _clean_str(rec.get("menu")) or "",
            _clean_str(rec.get("description")),
        )
        return pred.industry, float(pred.confidence) if conf is None else conf

    def recommend(self, requests: pd.DataFrame) -> pd.DataFrame:
        from recsys_assets.ranking.pyfunc_model import DEFAULT_K, MAX_K, OUTPUT_COLUMNS, _clean_str

        qrows: list[tuple[str, str, float]] = []
        toks: list[tuple[str, str]] = []
        ks: list[int] = []
        ids: list[str] = []
        for i, rec in enumerate(requests.to_dict("records")):
            industry, conf = self._industry(rec)
            k = rec.get("k")
            ks.append(max(1, min(DEFAULT_K if k is None or pd.isna(k) else int(k), MAX_K)))
            qid = f"q{i:08d}"
            qrows.append((qid, industry, conf))
            toks.extend((qid, t) for t in menu_tokens(_clean_str(rec.get("menu"))))
            ids.append(_clean_str(rec.get("restaurant_id")) or "")
        if not qrows:
            return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
        q = pd.DataFrame(qrows, columns=["restaurant_id", "industry", "label_confidence"])
        t = pd.DataFrame(toks, columns=["restaurant_id", "token"])
        ranked = self.scorer.rank(self.name, q, t, depth=max(ks))
        idx = ranked["restaurant_id"].str[1:].astype("int64").to_numpy()
        keep = ranked["rank"].to_numpy() <= pd.Series(ks).to_numpy()[idx]
        ranked, idx = ranked[keep], idx[keep]
        rank = ranked["rank"].to_numpy(dtype="int64")
        out = pd.DataFrame(
            {
                "request_index": idx,
                "restaurant_id": [ids[i] for i in idx],
                "industry": q["industry"].to_numpy()[idx],
                "label_confidence": q["label_confidence"].to_numpy(dtype="float64")[idx],
                "rank": rank,
                "product_id": ranked["product_id"].astype(str).to_numpy(),
                "name": [self.product_names.get(p, "") for p in ranked["product_id"]],
                # A list has no model score: a rank-based one in (0, 1], higher first.
                "score": 1.0 / rank,
            }
        )
        return out.sort_values(["request_index", "rank"], kind="mergesort").reset_index(drop=True)
