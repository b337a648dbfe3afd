"""The candidate features of a few requests (the pyfunc's) over its one serving snapshot.

`token_features.candidate_features` serves any set of queries with about a dozen SQL statements
(work tables, candidates, statistics, the registry SELECT): for one request, ~35 ms of the warm
pyfunc's ~45. All but the request is fixed for a server, so `SnapshotIndex` runs those same
cf_*.sql statements once per server (on its first request) over synthetic queries (one per
industry without a menu, one without an industry, one per known token holding that token alone)
and keeps their answers as arrays. A request then takes its industry's candidates and each of its known tokens' (the UNION of
cf_candidates.sql, every part of which depends on the industry or on one token), matches its menu
words against the known tokens as cf_query_tokens.sql does, aggregates with
`token_features.token_aggregates`, and runs one statement: the feature registry's SELECT.
tests/test_request_features.py holds the rows equal to candidate_features'.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from recsys_assets.ranking import sql
from recsys_assets.ranking.token_features import (
    aggregates_table,
    features_sql,
    work_tables,
)

# The registered names of one request's tables (this cursor's views, as the work tables are).
_QUERIES = "rk_cf_queries"
_CANDIDATES = "rk_cf_request_candidates"
_STATS = ("tid", "pc", "lift", "ln_lift", "pen", "qty", "share_sum")
# Menu words whose known tokens a server remembers (a menu word recurs across requests).
WORD_CACHE = 1 << 16


class SnapshotIndex:
    """The serving snapshot's known tokens, candidates and token x product statistics."""

    def __init__(self, con: duckdb.DuckDBPyConnection, snapshot, params: dict) -> None:
        self.share_a = float(params["share_a"])
        self.min_len = int(params["contain_min_len"])
        cur = con.cursor()
        try:
            self._build(cur, snapshot, params)
        finally:
            cur.close()
        self.word_tids = lru_cache(maxsize=WORD_CACHE)(self._word_tids)

    def _build(self, cur: duckdb.DuckDBPyConnection, snapshot, params: dict) -> None:
        s = {"s": snapshot}
        industries = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT industry FROM rk_snap_ind_prod WHERE snapshot = $s "
                "AND industry IS NOT NULL ORDER BY industry",
                s,
            ).fetchall()
        ]
        tokens = [
            r[0]
            for r in cur.execute(
                "SELECT token FROM rk_snap_token WHERE snapshot = $s ORDER BY token", s
            ).fetchall()
        ]
        ids = [f"i{i:09d}" for i in range(len(industries))] + ["g"]
        ids += [f"t{i:09d}" for i in range(len(tokens))]
        n = len(ids)
        typed = {  # arrow, typed even when a list is empty (no industry or no known token)
            "restaurant_id": pa.array(ids, pa.string()),
            "snapshot": pa.array([snapshot] * n, pa.date32()),
            "industry": pa.array([*industries, *([None] * (n - len(industries)))], pa.string()),
            "industry_code": pa.array([0] * n, pa.int64()),
            "label_confidence": pa.array([1.0] * n, pa.float64()),
            "region_code": pa.nulls(n, pa.int64()),
            "size_ord": pa.nulls(n, pa.int64()),
        }
        cur.register("rk_queries", pa.table(typed))
        menus = {"restaurant_id": ids[len(industries) + 1 :], "token": tokens}
        cur.register(
            "rk_menu_tokens", pa.table({c: pa.array(v, pa.string()) for c, v in menus.items()})
        )
        # Each token query knows its own token only: no containment match for it.
        alone = {**params, "contain_min_len": 1 << 30}
        try:
            with work_tables(cur, alone):
                self._read(cur, params, industries)
        finally:
            cur.unregister("rk_queries")
            cur.unregister("rk_menu_tokens")

    def _read(self, cur: duckdb.DuckDBPyConnection, params: dict, industries: list[str]) -> None:
        """The arrays, from the work tables of the synthetic queries."""
        known = cur.execute("SELECT tid, si, n_t, d, ln_d, token FROM rk_cf_known ORDER BY tid")
        self.known = {k: np.asarray(v) for k, v in known.fetchnumpy().items()}
        self.tid = dict(
            zip(self.known.pop("token").tolist(), self.known["tid"].tolist(), strict=True)
        )
        by_len: dict[int, list[tuple[str, int]]] = {}
        for token, tid in self.tid.items():
            if len(token) >= self.min_len:
                by_len.setdefault(len(token), []).append((token, tid))
        self.inside = sorted(by_len.items(), reverse=True)  # longest first
        if len(set(self.known["si"].tolist())) > 1:
            raise ValueError("a serving snapshot index holds one snapshot")
        products = cur.execute("SELECT product_id FROM rk_cf_products ORDER BY pc").fetchnumpy()
        self.product_ids = np.asarray(products["product_id"], dtype=object)
        self._candidates(cur, params, industries)
        stats = sql.run(cur, "cf_token_stats", params).fetchnumpy()
        order = np.argsort(np.asarray(stats["tid"]), kind="stable")
        self.stats = {c: np.asarray(stats[c])[order] for c in _STATS}
        top = int(self.known["tid"].max(initial=0)) + 2
        self.stats_from = np.searchsorted(self.stats["tid"], np.arange(top))

    def _candidates(self, cur: duckdb.DuckDBPyConnection, params: dict, industries) -> None:
        """Each synthetic query's candidates (product codes), and every product's `g`."""
        text = sql.load("cf_candidates")
        cand = cur.execute(text, sql.params_for(text, params)).fetchnumpy()
        names = cur.execute("SELECT restaurant_id, rq FROM rk_cf_queries").fetchall()
        qt = dict(cur.execute("SELECT rq, tid FROM rk_cf_query_tokens").fetchall())
        rq, pc = np.asarray(cand["rq"]), np.asarray(cand["pc"])
        order = np.lexsort((pc, rq))
        rq, pc = rq[order], pc[order]
        bounds = np.searchsorted(rq, np.arange(len(names) + 1))
        by_rq = {q: pc[bounds[q] : bounds[q + 1]] for q in range(len(names))}
        self.by_industry = {industries[int(r[1:])]: by_rq[q] for r, q in names if r[0] == "i"}
        self.glob = next(by_rq[q] for r, q in names if r == "g")
        self.by_tid = {qt[q]: by_rq[q] for r, q in names if r[0] == "t" and q in qt}
        self.g = np.zeros(len(self.product_ids))
        self.g[np.asarray(cand["pc"])] = np.asarray(cand["g"])

    def _word_tids(self, word: str) -> tuple[int, ...]:
        """The known tokens a menu word counts as (cf_query_tokens.sql): itself when known, and
        the longest known tokens (of at least contain_min_len characters) inside it."""
        found = [self.tid[word]] if word in self.tid else []
        for length, tokens in self.inside:
            if length < len(word):
                hits = [tid for token, tid in tokens if token in word]
                if hits:
                    return tuple(found + hits)
        return tuple(found)

    def query_tokens(self, words: Sequence[str]) -> np.ndarray:
        """The tids of a query's known tokens, sorted and distinct."""
        tids = {t for w in words for t in self.word_tids(w)}
        return np.array(sorted(tids), dtype=np.int64)

    @contextmanager
    def candidate_features(
        self, cur: duckdb.DuckDBPyConnection, queries: pd.DataFrame, words: Sequence[Sequence[str]]
    ) -> Iterator[str]:
        """The SQL of the candidate feature rows of `queries` (the columns of rk_queries, one row
        per restaurant id) with the menu tokens `words` (one list per row), valid inside the
        block; what candidate_features gives for them over this snapshot."""
        q = queries.assign(rq=np.arange(len(queries), dtype=np.int32), si=np.int32(0))
        pairs, tokens = self._pairs(q, words)
        used = np.unique(tokens["tid"])
        rows = np.concatenate(
            [np.arange(self.stats_from[t], self.stats_from[t + 1]) for t in used.tolist()]
            or [np.zeros(0, np.int64)]
        )
        stats = {c: v[rows] for c, v in self.stats.items()}
        cur.register(_QUERIES, q)
        cur.register(_CANDIDATES, aggregates_table(pairs, tokens, self.known, stats, self.share_a))
        try:
            yield features_sql(_CANDIDATES)
        finally:
            cur.unregister(_CANDIDATES)
            cur.unregister(_QUERIES)

    def _pairs(self, q: pd.DataFrame, words) -> tuple[pa.Table, dict[str, np.ndarray]]:
        """The (query, candidate) pairs and the (query, known token) rows, sorted by query."""
        pcs, rqs, tids, trq = [], [], [], []
        for i, (industry, menu) in enumerate(zip(q["industry"], words, strict=True)):
            known = self.query_tokens(menu)
            parts = [self.by_industry.get(industry, self.glob)]
            parts += [self.by_tid[t] for t in known.tolist() if t in self.by_tid]
            mine = np.unique(np.concatenate(parts))
            pcs.append(mine)
            rqs.append(np.full(len(mine), i, np.int32))
            tids.append(known)
            trq.append(np.full(len(known), i, np.int64))
        pc = np.concatenate(pcs or [np.zeros(0, np.int64)]).astype(np.int32)
        rq = np.concatenate(rqs or [np.zeros(0, np.int32)])
        ids = q["restaurant_id"].to_numpy(dtype=object)
        pairs = pa.table(
            {
                "restaurant_id": pa.array(ids[rq], pa.string()),
                "product_id": pa.array(self.product_ids[pc], pa.string()),
                "rq": rq,
                "si": np.zeros(len(pc), np.int32),
                "pc": pc,
                "g": self.g[pc],
            }
        )
        tokens = {
            "rq": np.concatenate(trq or [np.zeros(0, np.int64)]),
            "tid": np.concatenate(tids or [np.zeros(0, np.int64)]),
        }
        return pairs, tokens
