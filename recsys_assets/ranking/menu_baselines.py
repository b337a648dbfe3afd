"""menu_knn and menu_token_association ranked with numpy and scipy sparse products, not SQL.

Their SQL joined every query's menu tokens with the kNN pool's and the association list's rows and
grouped tens of millions of (query, neighbour) and (query, product) pairs in DuckDB: most of the
holdout scoring's CPU at scale. Here the same numbers come from sparse products over the scorer's
integer codes (ids numbered in sorted order, so ties by code are ties by id), a top-k per row (one
sort of packed int64 keys of the entries near the top; `np.partition` over the few products for
the token scores), and the padding lists merged only into the queries whose own list is too short.
The former SQL stays in the tests as the oracle; the rows and ranks are the same:

- menu_knn: cosine similarities rounded to 9 decimals as DuckDB's `round` does (half away from
  zero), so each is an integer number of 1e-9; the top neighbours by (similarity desc, id asc);
  a product's score is the sum of those integers / 1e9, which is what `round(sum(sim), 9)` gave.
- menu_token_association: the logarithms are DuckDB's (`baseline_menu_*.sql`), numpy only takes
  their max and adds them, so every key is the same float.
- the order within a query: its own list by (key desc, product id), then each padding list in
  turn (industry first-window popularity, industry popularity, global popularity) without the
  products already listed, to the depth (`baseline_rank.sql`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from recsys_assets.ranking import sql

if TYPE_CHECKING:
    import duckdb

_CHUNK = 1024  # queries per dense block (a block is chunk x products float64)


@dataclass(frozen=True)
class MenuTables:
    """The bl_* tables as arrays over the scorer's codes (what the two menu baselines read)."""

    industries: pd.Index  # industry names; a query's industry index is its position here
    ind_product: list[np.ndarray]  # per industry: product codes, by product code
    ind_rank: list[np.ndarray]  # per industry, aligned: ind_rank
    new_rank: list[np.ndarray]  # per industry, aligned: new_rank
    base: np.ndarray  # (industries + 1) x products: the token prior term; last row: no industry
    global_rank: np.ndarray  # per product code (NaN: not in bl_prod)
    idf: np.ndarray  # per token code (NaN: not a kNN token)
    knn_tokens: sparse.csr_matrix  # tokens x pool restaurants: TF-IDF weights
    knn_buys: sparse.csr_matrix  # pool restaurants x products: first-window purchase rows
    lifts: sparse.csr_matrix  # tokens x products: ln(lift)


def load_tables(con: duckdb.DuckDBPyConnection, n_products: int, n_tokens: int) -> MenuTables:
    """`MenuTables` of a scorer's private DuckDB (its bl_* tables already coded)."""
    ind = sql.run(con, "baseline_menu_ind").df().sort_values(["industry", "product_id"])
    prod = sql.run(con, "baseline_menu_prod", {"n_products": n_products}).df()
    industries = pd.Index(ind["industry"].unique(), dtype=object)
    groups = [g for _, g in ind.groupby("industry", sort=False)]
    base = np.tile(prod["base"].to_numpy(dtype=np.float64), (len(industries) + 1, 1))
    at = industries.get_indexer(ind["industry"])
    base[at, ind["product_id"].to_numpy()] = ind["base"].to_numpy(dtype=np.float64)
    tok = con.execute("SELECT restaurant_id, token, idf, w FROM bl_knn_tok").fetchnumpy()
    buy = con.execute("SELECT restaurant_id, product_id FROM bl_knn_buy").fetchnumpy()
    lift = sql.run(con, "baseline_menu_lift").fetchnumpy()
    pool = np.concatenate([tok["restaurant_id"], buy["restaurant_id"]]).astype(np.int64)
    n_pool = int(np.max(pool, initial=-1))
    idf = np.full(n_tokens, np.nan)
    idf[tok["token"]] = tok["idf"]
    return MenuTables(
        industries=industries,
        ind_product=[g["product_id"].to_numpy() for g in groups],
        ind_rank=[g["ind_rank"].to_numpy(dtype=np.float64) for g in groups],
        new_rank=[g["new_rank"].to_numpy(dtype=np.float64) for g in groups],
        base=base,
        global_rank=prod["global_rank"].to_numpy(dtype=np.float64, na_value=np.nan),
        idf=idf,
        knn_tokens=_csr(tok["token"], tok["restaurant_id"], tok["w"], (n_tokens, n_pool + 1)),
        knn_buys=_csr(buy["restaurant_id"], buy["product_id"], None, (n_pool + 1, n_products)),
        lifts=_csr(lift["token"], lift["product_id"], lift["ll"], (n_tokens, n_products)),
    )


def _csr(rows, cols, values, shape) -> sparse.csr_matrix:
    """A CSR matrix; duplicate (row, col) entries add up (as rows of a SQL join would)."""
    data = np.ones(len(rows)) if values is None else np.asarray(values, dtype=np.float64)
    out = sparse.coo_matrix((data, (np.asarray(rows), np.asarray(cols))), shape=shape).tocsr()
    out.sum_duplicates()
    return out


@dataclass(frozen=True)
class Queries:
    """A batch of coded queries: codes 0..n-1, each one's industry index (-1: none) and tokens."""

    n: int
    industry: np.ndarray  # per query: index into MenuTables.industries, -1 when none matches
    tok_query: np.ndarray  # menu token rows: query code
    tok_token: np.ndarray  # menu token rows: token code (-1: a token the tables do not know)


def industry_index(tables: MenuTables, industries: pd.Series) -> np.ndarray:
    """Each query's industry as an index into `tables.industries` (-1: missing or unknown)."""
    values = industries.astype(object)
    known = ~pd.isna(values).to_numpy()
    out = np.full(len(values), -1, dtype=np.int64)
    out[known] = tables.industries.get_indexer(pd.Index(values[known].astype(str)))
    return out


# --------------------------------------------------------------------------------------------
# The baselines' own lists: (query, product, key) rows, at most `depth` per query, in rank order.
# --------------------------------------------------------------------------------------------


def knn_lists(
    t: MenuTables, q: Queries, neighbours: int, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """menu_knn's own list: (query codes, product codes), top `depth` per query, in rank order."""
    ok = q.tok_token >= 0
    rows, toks = q.tok_query[ok], q.tok_token[ok]
    idf = t.idf[toks]
    ok = ~np.isnan(idf)
    rows, toks, idf = rows[ok], toks[ok], idf[ok]
    norm = np.sqrt(np.bincount(rows, idf * idf, minlength=q.n))
    weights = _csr(rows, toks, idf / norm[rows], (q.n, len(t.idf)))
    out = []
    for lo in range(0, q.n, _CHUNK):
        sim = (weights[lo : lo + _CHUNK] @ t.knn_tokens).tocsr()  # every stored value > 0
        units = _round_half_away(sim.data * 1e9).astype(np.int64)  # similarity in 1e-9
        r, nb, units = _top_k_ints(_row_of(sim), sim.indices, units, neighbours, sim.shape[1])
        score = _summed(r, nb, units, t.knn_buys, sim.shape)
        rq, rp, _ = _top_k_ints(_row_of(score), score.indices, score.data, depth, score.shape[1])
        out.append((rq + lo, rp))
    return _concat(out)


def _summed(r, nb, units, buys: sparse.csr_matrix, shape) -> sparse.csr_matrix:
    """query x product: the sum of `units` over each query's neighbours that bought the product
    (integers, one stored entry per pair even when the sum is 0). scipy's product drops zero
    sums, so both products below sum positive values: (units + 1) and 1 per purchase row."""
    plus = sparse.csr_matrix(((units + 1).astype(np.float64), (r, nb)), shape=shape) @ buys
    ones = sparse.csr_matrix((np.ones(len(r)), (r, nb)), shape=shape) @ buys
    if not (
        np.array_equal(plus.indptr, ones.indptr) and np.array_equal(plus.indices, ones.indices)
    ):  # the same pairs give the same stored entries in the same order
        raise AssertionError("the two products of the same pairs store different entries")
    plus.data = (plus.data - ones.data).astype(np.int64)
    return plus


def token_lists(t: MenuTables, q: Queries, prior_depth: int, depth: int):
    """menu_token_association's own list: (query codes, product codes), top `depth` per query."""
    ok = q.tok_token >= 0
    rows, toks = q.tok_query[ok], q.tok_token[ok]
    prior = np.zeros((len(t.industries) + 1, t.base.shape[1]), dtype=bool)
    for i, (p, rank) in enumerate(zip(t.ind_product, t.new_rank, strict=True)):
        prior[i, p[rank <= prior_depth]] = True
    order = np.argsort(rows, kind="stable")
    rows, toks = rows[order], toks[order]
    bounds = np.searchsorted(rows, np.arange(0, q.n + _CHUNK, _CHUNK))
    out = []
    for c, lo in enumerate(range(0, q.n, _CHUNK)):
        n = min(_CHUNK, q.n - lo)
        part = slice(bounds[c], bounds[c + 1])
        lift = _max_lift(t.lifts, rows[part] - lo, toks[part], n)
        ind = q.industry[lo : lo + n]  # -1 reads the last row: no industry
        lifted = lift > -np.inf
        key = t.base[ind] + np.where(lifted, lift, 0.0)
        rq, rp = _top_k(np.where(lifted | prior[ind], key, -np.inf), depth)[:2]
        out.append((rq + lo, rp))
    return _concat(out)


def _max_lift(lifts: sparse.csr_matrix, rows: np.ndarray, toks: np.ndarray, n: int) -> np.ndarray:
    """n x products: the largest ln(lift) over each query's tokens (-inf: no token lifts it)."""
    starts, ends = lifts.indptr[toks], lifts.indptr[toks + 1]
    lengths = ends - starts
    at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    out = np.full((n, lifts.shape[1]), -np.inf)
    flat = np.repeat(rows, lengths) * lifts.shape[1] + lifts.indices[at]
    np.maximum.at(out.reshape(-1), flat, lifts.data[at])
    return out


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round (DuckDB's `round`): halves away from zero, where np.rint goes to even."""
    r = np.rint(x)
    half = np.abs(x - np.trunc(x)) == 0.5
    r[half] = np.trunc(x[half]) + np.sign(x[half])
    return r


def _row_of(m: sparse.csr_matrix) -> np.ndarray:
    """The row of each stored entry of a CSR matrix."""
    return np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))


def _top_k_ints(rows, cols, values, k: int, n_cols: int):
    """(rows, cols, values) of each row's k largest values (non-negative integers), ties by
    column, in that order. One sort of one int64 per entry: row, inverted value and column
    packed into its bits (a lexsort of the three costs several times more)."""
    values = np.asarray(values, dtype=np.int64)
    near = _near_top(rows, values, k)
    rows, cols, values = rows[near], cols[near], values[near]
    cb = max(int(n_cols - 1).bit_length(), 1)
    top = int(values.max(initial=0))
    vb = max(top.bit_length(), 1)
    if int(rows.max(initial=0)).bit_length() + vb + cb > 63:
        order = np.lexsort((cols, -values, rows))
        r, c, v = rows[order], cols[order], values[order]
    else:
        key = (rows.astype(np.int64) << (vb + cb)) | ((top - values) << cb) | cols
        key.sort()
        r, c = key >> (vb + cb), key & ((1 << cb) - 1)
        v = top - ((key >> cb) & ((1 << vb) - 1))
    keep = _position_in_group(r) < k
    return r[keep], c[keep], v[keep]


def _top_k(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, keys) of each row's k largest finite keys, ties by column, in that order
    (-inf: absent)."""
    width = keys.shape[1]
    if width > k:
        kth = np.partition(keys, width - k, axis=1)[:, width - k]  # each row's k-th largest
        chosen = (keys >= kth[:, None]) & (keys > -np.inf)
    else:
        chosen = keys > -np.inf
    r, c = np.nonzero(chosen)  # row-major: columns ascending within a row
    v = keys[r, c]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    keep = _position_in_group(r) < k  # ties at the k-th key: the lowest columns
    return r[keep], c[keep], v[keep]


def _near_top(rows: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """A mask of the entries that may be among their row's k largest values (non-negative
    integers): those in the value bucket (256 per row) of the row's k-th largest, or above it.
    Only these few are sorted; every row keeps its k largest and all their ties."""
    if len(values) == 0:
        return np.ones(0, dtype=bool)
    bucket = values >> max(int(values.max()).bit_length() - 8, 0)  # 0 .. 255
    width = int(bucket.max()) + 1
    n_rows = int(rows.max()) + 1
    counts = np.bincount(rows * width + bucket, minlength=n_rows * width).reshape(n_rows, width)
    at_or_above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # entries in bucket >= j
    cut = np.maximum((at_or_above >= k).sum(axis=1) - 1, 0)  # the k-th largest's bucket
    return bucket >= cut[rows]


def _position_in_group(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted array."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)]))


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])


# --------------------------------------------------------------------------------------------
# Padding: a query whose own list is shorter than the depth continues with the padding lists.
# --------------------------------------------------------------------------------------------


def pad(
    t: MenuTables,
    q: Queries,
    own: tuple[np.ndarray, np.ndarray],
    depth: int,
    pad_new: bool,
    pad_ind: bool,
) -> pd.DataFrame:
    """DataFrame(restaurant_id, product_id, rank) as baseline_rank.sql returns it: each query's
    own list (in rank order), then the padding lists without the products already listed."""
    qs, ps = own
    pos = _position_in_group(qs)
    short = np.bincount(qs, minlength=q.n) < depth
    keep = ~short[qs]
    parts = [(qs[keep], ps[keep], pos[keep])]
    rows = [(qs[~keep], ps[~keep], np.zeros((~keep).sum(), dtype=np.int64), pos[~keep])]
    short_q = np.flatnonzero(short)
    lists = [(1, t.new_rank)] * pad_new + [(2, t.ind_rank)] * pad_ind
    for prio, ranks in lists:
        per_ind = [_ranked(p, r, depth) for p, r in zip(t.ind_product, ranks, strict=True)]
        rows.append(_expand(short_q, q.industry[short_q], per_ind, prio))
    glob = _ranked(np.arange(len(t.global_rank)), t.global_rank, depth)
    rows.append(_expand(short_q, np.zeros(len(short_q), dtype=np.int64), [glob], 3))
    q_pad, p_pad, prio_pad, pos_pad = (np.concatenate(x) for x in zip(*rows, strict=True))
    parts.append(_merge(q_pad, p_pad, prio_pad, pos_pad, depth))
    q_all, p_all, pos_all = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.argsort(q_all, kind="stable")  # two runs, each in (query, position) order
    return pd.DataFrame(
        {
            "restaurant_id": q_all[order],
            "product_id": p_all[order],
            "rank": (pos_all[order] + 1).astype(np.int32),
        }
    )


def _ranked(products: np.ndarray, ranks: np.ndarray, depth: int) -> np.ndarray:
    """The products with rank <= depth, by (rank, product code): one padding list."""
    keep = ranks <= depth
    p, r = products[keep], ranks[keep]
    return p[np.lexsort((p, r))]


def _expand(queries: np.ndarray, group: np.ndarray, lists: list[np.ndarray], prio: int):
    """(query, product, prio, position) rows: list `group[i]` for query i (-1: no list)."""
    lengths = np.array([len(x) for x in lists] + [0])[group]
    flat = np.concatenate([*lists, np.zeros(0, dtype=np.int64)])
    starts = np.concatenate([[0], np.cumsum([len(x) for x in lists])])[group.clip(0)]
    pos = _position_in_group(np.repeat(np.arange(len(queries)), lengths))
    products = flat[np.repeat(starts, lengths) + pos]
    return np.repeat(queries, lengths), products, np.full(len(products), prio), pos


def _merge(q, p, prio, pos, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (query, product) once, from its first list; then the first `depth` per query by
    (list, position): (query, product, position in the merged list)."""
    order = np.lexsort((pos, prio, p, q))
    q, p, prio, pos = q[order], p[order], prio[order], pos[order]
    first = np.r_[True, (q[1:] != q[:-1]) | (p[1:] != p[:-1])][: len(q)]
    q, p, prio, pos = q[first], p[first], prio[first], pos[first]
    order = np.lexsort((pos, prio, q))
    q, p = q[order], p[order]
    at = _position_in_group(q)
    keep = at < depth
    return q[keep], p[keep], at[keep]
