"""The candidate features of a set of queries, with the menu-token aggregates computed in numpy.

Each (query, candidate) pair aggregates the token x product statistics over the query's known menu
tokens (max lift, mean ln lift, count, ...). As one SQL statement that was a row per (query,
candidate, known token), ~200M for the large scale's serving, joined to the statistics and grouped
back: most of rk_candidates' and `recommendations`' feature CPU. Here DuckDB finds the candidates
and each query's known tokens (sql/cf_*.sql); numpy fills a (product x token) table of the values
a row takes (the statistics, or the token's defaults: they depend on the token and the product
only) and walks the pairs' token slots with whole-array lookups and running maxima and sums; the
feature registry's SELECT (sql/candidate_features.sql) then reads the pairs with their aggregates
as the table `tokf`. The rows are those of the single statement (tests/candidate_oracle/).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa

from recsys_assets.ranking import sql
from recsys_assets.ranking.features import feature_columns_sql

# Work tables of one run, in build order (each from sql/<name without rk_>.sql).
_WORK_TABLES = ("rk_cf_queries", "rk_cf_products", "rk_cf_known", "rk_cf_query_tokens")
_CANDIDATES = "rk_cf_candidates"  # registered: the pairs with their token aggregates
# (query, candidate, token) rows looked up at once: bounds the memory of a block (a few arrays).
ROWS_PER_CHUNK = 1 << 20
# (token, product) cells of a value table (6 float64 each): more products take several tables.
DENSE_LOOKUP_CELLS = 1 << 21
# The values of a (query, candidate, token) row, per (token, product), and the aggregates that
# take their maximum or their sum (the sums of the means divided by the count afterwards).
_VALUES = ("lift", "pen", "qty", "sh", "share_log_lift", "ln_lift")
_MAXIMA = {
    "lift": "token_lift_max",
    "pen": "token_pen_max",
    "qty": "token_qty_max",
    "sh": "share_max",
    "share_log_lift": "share_log_lift_max",
}
_SUMS = {
    "qty": "token_qty_mean",
    "sh": "share_mean",
    "share_log_lift": "share_log_lift_sum",
    "ln_lift": "token_log_lift_mean",
}
_MEANS = ("token_qty_mean", "share_mean", "token_log_lift_mean")
# The aggregates, as candidate_features.sql's registry expressions name them (tokf.<name>).
AGGREGATES = ("n_known_tokens", *_MAXIMA.values(), *_SUMS.values())


@contextmanager
def candidate_features(
    con: duckdb.DuckDBPyConnection, params: dict, queries: str = "rk_queries"
) -> Iterator[str]:
    """The SQL (no parameters) of the candidate feature rows of `queries` (rk_queries or a table
    of some of its rows), valid inside the block: one definition for training, evaluation and
    serving. Reads rk_menu_tokens and the rk_snap_* tables; `params`: dataset.candidate_params.
    The work tables are temporary (this connection's own) and dropped on exit."""
    with work_tables(con, params, queries):
        text = sql.load("cf_candidates")
        pairs = con.sql(text, params=sql.params_for(text, params)).to_arrow_table()
        con.register(_CANDIDATES, _with_aggregates(con, pairs, params))
        try:
            yield features_sql()
        finally:
            con.unregister(_CANDIDATES)


@contextmanager
def work_tables(
    con: duckdb.DuckDBPyConnection, params: dict, queries: str = "rk_queries"
) -> Iterator[None]:
    """rk_cf_queries, rk_cf_products, rk_cf_known, rk_cf_query_tokens of `queries` (see
    sql/cf_*.sql) as this connection's temporary tables inside the block."""
    fragments = {"queries": queries}
    try:
        for table in _WORK_TABLES:
            verb = f"CREATE OR REPLACE TEMP TABLE {table} AS"
            sql.run(con, table.removeprefix("rk_"), params, fragments, prefix=verb)
        yield
    finally:
        for table in _WORK_TABLES:
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def features_sql(candidates: str = _CANDIDATES) -> str:
    """The feature registry's SELECT (sql/candidate_features.sql) over `candidates`: the pairs
    with their aggregates (`aggregates_table`), joined to rk_cf_queries by rq."""
    return sql.load(
        "candidate_features", {"feature_columns": feature_columns_sql(), "candidates": candidates}
    )


def _arrays(result: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in result.fetchnumpy().items()}


def _with_aggregates(con: duckdb.DuckDBPyConnection, pairs: pa.Table, params: dict) -> pa.Table:
    """The candidates' ids with the aggregates, from the work tables of `con`."""
    known = _arrays(con.execute("SELECT tid, si, n_t, d, ln_d FROM rk_cf_known"))
    tokens = _arrays(con.execute("SELECT rq, tid FROM rk_cf_query_tokens ORDER BY rq, tid"))
    stats = _arrays(sql.run(con, "cf_token_stats", params))
    return aggregates_table(pairs, tokens, known, stats, float(params["share_a"]))


def aggregates_table(
    pairs: pa.Table,
    tokens: dict[str, np.ndarray],
    known: dict[str, np.ndarray],
    stats: dict[str, np.ndarray],
    share_a: float,
) -> pa.Table:
    """`pairs` (rq, si, pc, g, restaurant_id, product_id)' ids with the aggregates (NULL for a
    query without a known token): the table `features_sql` reads; arguments as token_aggregates'."""
    values, has = token_aggregates(
        {c: pairs.column(c).to_numpy() for c in ("rq", "si", "pc", "g")},
        tokens,
        known,
        stats,
        share_a,
    )
    columns = {c: pairs.column(c) for c in ("rq", "restaurant_id", "product_id")}
    columns.update({c: pa.array(values[c], mask=~has) for c in AGGREGATES})
    return pa.table(columns)


def token_aggregates(
    pairs: dict[str, np.ndarray],
    tokens: dict[str, np.ndarray],
    known: dict[str, np.ndarray],
    stats: dict[str, np.ndarray],
    share_a: float,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(aggregate -> value per pair, whether the pair's query knows a token).

    `pairs`: rq (query), si (its snapshot), pc (product), g (overall basket share); `tokens`: rq,
    tid sorted by rq; `known`: tid (1..T), si, n_t, d, ln_d; `stats`: tid, pc and the filled
    statistics (lift, ln_lift, pen, qty, share_sum). A (token, product) without statistics takes
    the token's defaults. Every value a (query, candidate, token) row aggregates depends on the
    token and the product only (a token belongs to one snapshot, and so does `g` then), so it is
    computed once per (token, product) in a table (`_value_table`), and each row is one lookup in
    it (`_slot_aggregates`). The pairs go most tokens first, then by product (a product's column
    of the table stays in the CPU cache), in chunks of ROWS_PER_CHUNK token rows; a table covers
    DENSE_LOOKUP_CELLS cells (all products unless the block knows very many tokens)."""
    n = len(pairs["rq"])
    n_rq = int(max(pairs["rq"].max(initial=-1), tokens["rq"].max(initial=-1))) + 1
    first = np.concatenate([[0], np.cumsum(np.bincount(tokens["rq"], minlength=n_rq))])
    count = np.diff(first)[pairs["rq"]]
    has = count > 0
    values = {c: np.zeros(n) for c in AGGREGATES}
    values["n_known_tokens"] = count.astype(np.int64)
    if not has.any():
        return values, has
    used, local = np.unique(tokens["tid"], return_inverse=True)  # the tables' columns
    sel = np.flatnonzero(has)
    sel = sel[np.lexsort((pairs["pc"][sel], -count[sel]))]  # most tokens first, then by product
    n_pc = int(max(pairs["pc"].max(), stats["pc"].max(initial=-1))) + 1
    width = max(1, min(n_pc, DENSE_LOOKUP_CELLS // len(used)))  # products per table
    for p0 in range(0, n_pc, width):
        products = np.arange(p0, min(p0 + width, n_pc))
        table = _value_table(pairs, known, stats, used, products, share_a)
        mine = sel[(pairs["pc"][sel] >= p0) & (pairs["pc"][sel] < p0 + len(products))]
        for chunk in _chunks(mine, count):
            cell = (pairs["pc"][chunk] - p0) * len(used)  # + the token: the pair's cell
            first_token = first[pairs["rq"][chunk]]
            acc = _slot_aggregates(table, cell, first_token, local, count[chunk])
            for name, value in acc.items():
                values[name][chunk] = value
    for name in _MEANS:
        values[name][has] /= count[has]
    return values, has


def _chunks(sel: np.ndarray, count: np.ndarray) -> Iterator[np.ndarray]:
    """`sel` in consecutive pieces of at most ROWS_PER_CHUNK token rows (at least one pair)."""
    ends = np.cumsum(count[sel])
    lo = 0
    while lo < len(sel):
        base = ends[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(ends, base + ROWS_PER_CHUNK, side="right")), lo + 1)
        yield sel[lo:hi]
        lo = hi


def _slot_aggregates(table, cell, first_token, local, count) -> dict[str, np.ndarray]:
    """The maxima and sums of pairs with `count` tokens each (descending) over their token slots:
    slot k holds the k-th token of the pairs that have more than k (a prefix of them), so each slot
    is a few whole-array operations (no per-segment loop as in ufunc.reduceat); the sums add the
    tokens in their order."""
    acc: dict[str, np.ndarray] = {}
    have = np.searchsorted(-count, -np.arange(int(count[0])), side="left")  # pairs with > k
    for k, m in enumerate(have):
        cells = cell[:m] + np.take(local, first_token[:m] + k)
        for j, name in enumerate(_VALUES):
            v = np.take(table[j], cells)
            for out, ufunc in ((_MAXIMA.get(name), np.maximum), (_SUMS.get(name), np.add)):
                if out is None:
                    continue
                if k == 0:
                    acc[out] = v.copy()
                else:
                    ufunc(acc[out][:m], v, out=acc[out][:m])
    return acc


def _value_table(pairs, known, stats, used, products, share_a: float) -> np.ndarray:
    """The `_VALUES` of every (product of `products`, used token): [value, product, token]."""
    size = int(max(known["tid"].max(), used.max())) + 1
    by_tid = np.zeros(size, np.int64)  # tid -> row of `known`
    by_tid[known["tid"]] = np.arange(len(known["tid"]))
    k = by_tid[used]
    p0, width = int(products[0]), len(products)
    # g of each (product, snapshot), from the pairs: every cell a row reads has one.
    in_range = (pairs["pc"] >= p0) & (pairs["pc"] < p0 + width)
    g = np.zeros((width, int(known["si"].max()) + 1))
    g[pairs["pc"][in_range] - p0, pairs["si"][in_range]] = pairs["g"][in_range]
    g = g[:, known["si"][k]]  # per (product, used token)
    cols = {
        "lift": np.repeat(known["d"][k][None, :], width, axis=0),
        "ln_lift": np.repeat(known["ln_d"][k][None, :], width, axis=0),
        "pen": np.zeros((width, len(used))),
        "qty": np.zeros((width, len(used))),
        "share_sum": np.zeros((width, len(used))),
    }
    t = np.searchsorted(used, stats["tid"])
    hit = (t < len(used)) & (stats["pc"] >= p0) & (stats["pc"] < p0 + width)
    hit[hit] = used[t[hit]] == stats["tid"][hit]
    for c, col in cols.items():
        col[stats["pc"][hit] - p0, t[hit]] = stats[c][hit]
    cols["sh"] = (cols.pop("share_sum") + share_a * g) / (known["n_t"][k][None, :] + share_a)
    cols["share_log_lift"] = np.log((cols["sh"] + 1e-5) / (g + 1e-5))
    return np.stack([cols[c].ravel() for c in _VALUES])
