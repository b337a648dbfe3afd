"""rk_snap_basket and rk_snap_token_share for every snapshot, summed with numpy and scipy.

A restaurant's basket share of product p at snapshot j is p's share of everything it ordered before
j (its whole history), so it changes at every snapshot the restaurant orders in: there is one value
per (restaurant, product, snapshot), ~27M at the large scale. rk_snap_token_share sums those over
the restaurants with a menu token, for every (token, product, snapshot): as SQL that is a join of
the ~27M shares with every restaurant's menu tokens (~7 each) and a GROUP BY over the result
(15 + 27 s of the large `ranking_dataset`). Here each snapshot's shares are a sparse restaurants x
products matrix S_j and the sums are the sparse product M_j @ S_j with the menus (known tokens x
restaurants), a few seconds. DuckDB still does the joins of the order lines (sql/share_deltas.sql)
and puts the ids back (sql/snap_basket.sql, sql/snap_token_share.sql).
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from recsys_assets.ranking import sql

# Registered (never stored) inputs of snap_basket.sql and snap_token_share.sql.
_MEANS, _SUMS, _TIDS = "rk_basket_means", "rk_token_share_sums", "rk_share_tids"


def build_basket_tables(
    con: duckdb.DuckDBPyConnection, params: dict, fragments: dict[str, str]
) -> None:
    """Create rk_snap_basket and rk_snap_token_share (every snapshot of `params["snapshots"]`).

    Reads orders, restaurants, products, rk_first_window, rk_menu_tokens and rk_snap_token. The
    rows are those of the per-snapshot definitions (tests/snapshot_oracle/); the float sums add
    in another order (equal to within rounding).
    """
    n_snapshots = len(set(params["snapshots"]))
    deltas = _arrays(sql.run(con, "share_deltas", params, fragments))
    sql.run(con, "share_tids")
    try:
        menus = _arrays(sql.run(con, "share_menus", params, fragments))
        known = _arrays(sql.run(con, "share_known", params, fragments))
        means, sums = _basket_sums(deltas, menus, known, n_snapshots)
        con.register(_MEANS, means)
        con.register(_SUMS, sums)
        for table in ("rk_snap_basket", "rk_snap_token_share"):
            verb = f"CREATE TABLE {table} AS"
            sql.run(con, table.removeprefix("rk_"), params, fragments, prefix=verb)
    finally:
        for name in (_MEANS, _SUMS):
            con.unregister(name)
        con.execute(f"DROP TABLE IF EXISTS temp.{_TIDS}")


def _arrays(result: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in result.fetchnumpy().items()}


def _snapshot_shares(
    deltas: dict[str, np.ndarray], n_snapshots: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(j, rid, pid, share) of every restaurant and product with a share at each snapshot j = 1,
    2, ...: the running sum of the bucket quantities up to j over the restaurant's. The pairs come
    in (rid, pid) order, as a CSR matrix holds them."""
    rid, pid, j, dq = deltas["rid"], deltas["pid"], deltas["j"], deltas["dq"]
    n_pid, n_rid = int(pid.max(initial=0)) + 1, int(rid.max(initial=0)) + 1
    pairs, pair_of = np.unique(rid.astype(np.int64) * n_pid + pid, return_inverse=True)
    pair_rid, pair_pid = (pairs // n_pid).astype(np.int32), (pairs % n_pid).astype(np.int32)
    first = np.full(len(pairs), n_snapshots + 1, np.int32)
    np.minimum.at(first, pair_of, j)
    small = np.int16 if n_snapshots < 2**15 else np.int32  # int16: numpy sorts by radix
    by_j = np.argsort(j.astype(small), kind="stable")
    bounds = np.searchsorted(j[by_j], np.arange(n_snapshots + 2))
    qty = np.zeros(len(pairs))
    for jj in range(1, n_snapshots + 1):
        rows = by_j[bounds[jj] : bounds[jj + 1]]
        qty += np.bincount(pair_of[rows], dq[rows], minlength=len(pairs))
        now = np.flatnonzero(first <= jj)
        r, q = pair_rid[now], qty[now]
        yield jj, r, pair_pid[now], q / np.bincount(r, q, minlength=n_rid)[r]


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]):
    """A CSR matrix from entries already in (row, column) order, without a sort."""
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
    return sp.csr_matrix((values, cols, indptr), shape=shape)


def _basket_sums(
    deltas: dict[str, np.ndarray],
    menus: dict[str, np.ndarray],
    known: dict[str, np.ndarray],
    n_snapshots: int,
) -> tuple[pa.Table, pa.Table]:
    """(rk_basket_means, rk_token_share_sums), keyed by (j, pid) and (j, tid, pid).

    At each snapshot j: a product's summed shares over the restaurants with a share at j (at
    least one), and a token's summed shares over the restaurants with it on their menu, for the
    tokens known at j. A sparse product drops the sums that are 0; none is, as the order
    quantities, hence the shares, are > 0."""
    by_tid = np.lexsort((menus["rid"], menus["tid"]))
    m_tid, m_rid = menus["tid"][by_tid], menus["rid"][by_tid]
    n_tid = int(max(m_tid.max(initial=0), known["tid"].max(initial=0))) + 1
    n_rid = int(max(m_rid.max(initial=0), deltas["rid"].max(initial=0))) + 1
    n_pid = int(deltas["pid"].max(initial=0)) + 1
    is_known = np.zeros((n_tid, n_snapshots + 1), bool)
    is_known[known["tid"], known["j"]] = True
    means: list[tuple] = []
    sums: list[tuple] = []
    for j, r, p, share in _snapshot_shares(deltas, n_snapshots):
        if not len(r):
            continue
        total, count = np.bincount(p, share, minlength=n_pid), np.bincount(p, minlength=n_pid)
        has = np.flatnonzero(count)
        n = max(int(np.count_nonzero(np.bincount(r))), 1)
        means.append((np.full(len(has), j, np.int32), has.astype(np.int32), total[has] / n))
        keep = is_known[m_tid, j]
        m_j = _csr(m_tid[keep], m_rid[keep], np.ones(int(keep.sum())), (n_tid, n_rid))
        c = m_j @ _csr(r, p, share, (n_rid, n_pid))
        t = np.repeat(np.arange(n_tid, dtype=np.int32), np.diff(c.indptr))
        sums.append((np.full(len(t), j, np.int32), t, c.indices.astype(np.int32), c.data))
    return (
        _arrow(means, ("j", "pid", "basket_share")),
        _arrow(sums, ("j", "tid", "pid", "share_sum")),
    )


def _arrow(parts: list[tuple], names: tuple[str, ...]) -> pa.Table:
    """One Arrow table of the per-snapshot column tuples (int32 keys, a float64 value)."""
    types = [np.int32] * (len(names) - 1) + [np.float64]
    cols = [
        np.concatenate([part[i] for part in parts]).astype(types[i], copy=False)
        if parts
        else np.array([], types[i])
        for i in range(len(names))
    ]
    return pa.table(dict(zip(names, cols, strict=True)))
