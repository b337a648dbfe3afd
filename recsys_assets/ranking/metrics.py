"""Ranking metrics computed by our own code, not LightGBM's.

Why our own: LightGBM's built-in NDCG scores a query without any relevant item as 1.0, which would
inflate the average with restaurants that bought nothing. Here such queries are *excluded* from every
average and counted separately (`queries_without_positives`), so the reported figures only describe
restaurants that actually bought something in their first 30 days.

Conventions (the same for the model, the baselines and the oracle):
- `truth` maps product_id -> graded relevance (0..4); products with relevance 0 are not positives.
- The ideal DCG uses *all* the restaurant's purchases, including products the candidate generator
  missed, so a ranking cannot look perfect by ignoring what it failed to retrieve.
- Gain is 2^rel - 1, discount log2(rank + 1).
- Recall@k = relevant products in the top k / all relevant products.
- AP@k = sum over hits at rank i <= k of precision@i, divided by min(#relevant, k).
- HitRate@k = 1 when at least one relevant product is in the top k.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

METRIC_NAMES = ("ndcg_at_10", "recall_at_10", "recall_at_20", "map_at_10", "hit_rate_at_10")


def dcg_at_k(ranked: Sequence[str], truth: Mapping[str, float], k: int) -> float:
    total = 0.0
    for i, item in enumerate(ranked[:k]):
        rel = truth.get(item, 0.0)
        if rel > 0:
            total += (2.0**rel - 1.0) / math.log2(i + 2)
    return total


def ndcg_at_k(ranked: Sequence[str], truth: Mapping[str, float], k: int) -> float | None:
    """None when the query has no positive (it has no defined NDCG)."""
    ideal_rels = sorted((r for r in truth.values() if r > 0), reverse=True)[:k]
    if not ideal_rels:
        return None
    ideal = sum((2.0**r - 1.0) / math.log2(i + 2) for i, r in enumerate(ideal_rels))
    return dcg_at_k(ranked, truth, k) / ideal


def recall_at_k(ranked: Sequence[str], truth: Mapping[str, float], k: int) -> float | None:
    positives = {p for p, r in truth.items() if r > 0}
    if not positives:
        return None
    return len(positives.intersection(ranked[:k])) / len(positives)


def average_precision_at_k(
    ranked: Sequence[str], truth: Mapping[str, float], k: int
) -> float | None:
    positives = {p for p, r in truth.items() if r > 0}
    if not positives:
        return None
    hits = 0
    total = 0.0
    seen: set[str] = set()
    for i, item in enumerate(ranked[:k]):
        if item in positives and item not in seen:
            hits += 1
            total += hits / (i + 1)
        seen.add(item)
    return total / min(len(positives), k)


def hit_rate_at_k(ranked: Sequence[str], truth: Mapping[str, float], k: int) -> float | None:
    positives = {p for p, r in truth.items() if r > 0}
    if not positives:
        return None
    return 1.0 if positives.intersection(ranked[:k]) else 0.0


def query_metrics(ranked: Sequence[str], truth: Mapping[str, float]) -> dict[str, float] | None:
    """All the reported metrics for one query, or None when it has no positive."""
    ndcg = ndcg_at_k(ranked, truth, 10)
    if ndcg is None:
        return None
    return {
        "ndcg_at_10": ndcg,
        "recall_at_10": recall_at_k(ranked, truth, 10),  # type: ignore[dict-item]
        "recall_at_20": recall_at_k(ranked, truth, 20),  # type: ignore[dict-item]
        "map_at_10": average_precision_at_k(ranked, truth, 10),  # type: ignore[dict-item]
        "hit_rate_at_10": hit_rate_at_k(ranked, truth, 10),  # type: ignore[dict-item]
    }


@dataclass(frozen=True)
class MetricSummary:
    """Averages over queries with at least one positive; the rest are only counted."""

    metrics: dict[str, float]
    queries_evaluated: int
    queries_without_positives: int
    per_query: pd.DataFrame  # query_id + one column per metric (evaluated queries only)


def ranking_order(
    frame: pd.DataFrame,
    query_col: str = "restaurant_id",
    item_col: str = "product_id",
    score_col: str | None = "score",
    rank_col: str | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.Index, np.ndarray | None, pd.Index | None]:
    """(row order, query codes, queries, item codes, items) of a long frame ranked by score desc
    (ties: item id) or by rank; item codes only when the order needed them.

    A stable sort on integer codes (sorted factorization keeps the string order): the order of
    the mergesort by (query, -score, item) or (query, rank), in a fraction of its time.
    """
    q_codes, q_uniques = pd.factorize(frame[query_col], sort=True)
    if rank_col is not None:
        order = np.lexsort((frame[rank_col].to_numpy(), q_codes))
        return order, q_codes, pd.Index(q_uniques), None, None
    i_codes, i_uniques = pd.factorize(frame[item_col], sort=True)
    neg = -frame[score_col].astype(float).to_numpy()
    order = np.lexsort((i_codes, neg, q_codes))
    return order, q_codes, pd.Index(q_uniques), i_codes, pd.Index(i_uniques)


def rankings_from_frame(
    frame: pd.DataFrame,
    query_col: str = "restaurant_id",
    item_col: str = "product_id",
    score_col: str | None = "score",
    rank_col: str | None = None,
) -> dict[str, list[str]]:
    """query -> ranked item list, from a long frame sorted by score desc (ties: item id) or rank."""
    if frame.empty:
        return {}
    order = ranking_order(frame, query_col, item_col, score_col, rank_col)[0]
    ordered = frame.iloc[order]
    # Split the sorted columns at query boundaries (a pandas groupby costs ~50x more at 200k
    # queries); queries come out in sorted order, as the groupby gave them.
    qs = ordered[query_col].to_numpy()
    items = ordered[item_col].astype(str).tolist()
    starts = [0, *(np.flatnonzero(qs[1:] != qs[:-1]) + 1).tolist(), len(qs)]
    return {str(qs[a]): items[a:b] for a, b in itertools.pairwise(starts)}


def truth_from_frame(
    frame: pd.DataFrame,
    query_col: str = "restaurant_id",
    item_col: str = "product_id",
    relevance_col: str = "relevance",
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for q, item, rel in zip(frame[query_col], frame[item_col], frame[relevance_col], strict=True):
        out.setdefault(str(q), {})[str(item)] = float(rel)
    return out


def summarize(
    rankings: Mapping[str, Sequence[str]],
    truth: Mapping[str, Mapping[str, float]],
    queries: Iterable[str],
) -> MetricSummary:
    """Average the metrics over `queries` (every query of the cohort, ranked or not).

    A query with positives but no ranking counts as a miss (all metrics 0), never as absent.
    """
    rows = []
    without = 0
    for q in queries:
        qm = query_metrics(list(rankings.get(q, ())), truth.get(q, {}))
        if qm is None:
            without += 1
            continue
        rows.append({"query_id": q, **qm})
    per_query = pd.DataFrame(rows, columns=["query_id", *METRIC_NAMES])
    metrics = {
        name: (float(per_query[name].mean()) if len(per_query) else float("nan"))
        for name in METRIC_NAMES
    }
    return MetricSummary(metrics, len(per_query), without, per_query)


def ndcg_curve(
    rankings: Mapping[str, Sequence[str]],
    truth: Mapping[str, Mapping[str, float]],
    queries: Iterable[str],
    ks: Sequence[int] = (1, 3, 5, 10, 20, 30, 50),
) -> dict[int, float]:
    """Mean NDCG@k for each k, over queries with positives."""
    qs = [q for q in queries if any(r > 0 for r in truth.get(q, {}).values())]
    kmax = max(ks, default=0)
    vals: dict[int, list[float]] = {k: [] for k in ks}
    for q in qs:
        # One pass per query: the running DCG and ideal DCG after i items are exactly the sums
        # dcg_at_k / ndcg_at_k add up for k = i (same terms, same order).
        t = truth[q]
        ideal_rels = sorted((r for r in t.values() if r > 0), reverse=True)
        ranked = list(rankings.get(q, ()))
        dcg = ideal = 0.0
        at: dict[int, float] = {}
        for i in range(kmax):
            if i < len(ranked):
                rel = t.get(ranked[i], 0.0)
                if rel > 0:
                    dcg += (2.0**rel - 1.0) / math.log2(i + 2)
            if i < len(ideal_rels):
                ideal += (2.0 ** ideal_rels[i] - 1.0) / math.log2(i + 2)
            at[i + 1] = dcg / ideal
        for k in ks:
            if k > 0:  # NDCG@0 is undefined, as in ndcg_at_k
                vals[k].append(at[k])
    return {k: float(np.mean(v)) if v else float("nan") for k, v in vals.items()}


# --------------------------------------------------------------------------------------------
# The same metrics on whole frames at once (numpy over a queries x depth grid, no per-query
# Python): what `evaluate` uses at scale. Every number is the float the per-query functions above
# give: gains and discounts are the same expressions, running sums add in rank order (cumsum is
# sequential), averages are the same pandas/numpy means over the same values in the same order.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodedTruth:
    """A cohort's positives coded for lookups: what `truth_from_frame` + `summarize` read."""

    queries: pd.Index  # the cohort's distinct query ids (str), in cohort order
    cohort: np.ndarray  # the cohort, as codes into `queries` (duplicates kept, as summarize does)
    items: pd.Index  # the distinct positive item ids (str)
    keys: np.ndarray  # sorted query code * len(items) + item code of every positive
    relevance: np.ndarray  # the positives' relevance, aligned with `keys`
    positives: np.ndarray  # number of positives per query
    ideal: np.ndarray  # queries x depth: running ideal DCG (all positives, best first)


def _gains(rel: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(2^rel - 1) / log2(pos + 2), each factor computed by Python's float ops as in `dcg_at_k`."""
    values, inverse = np.unique(rel, return_inverse=True)
    gain = np.array([2.0 ** float(r) - 1.0 for r in values])[inverse.reshape(-1)]
    discount = np.array([math.log2(i + 2) for i in range(int(pos.max(initial=0)) + 1)])
    return gain / discount[pos]


def coded_truth(
    frame: pd.DataFrame,
    queries: Iterable[str],
    depth: int,
    query_col: str = "restaurant_id",
    item_col: str = "product_id",
    relevance_col: str = "relevance",
) -> CodedTruth:
    """Code `frame`'s positives (relevance > 0) of the cohort `queries` for `summarize_frame`."""
    cohort = pd.Index([str(q) for q in queries])
    uq = cohort.unique()
    t = pd.DataFrame(
        {
            "q": frame[query_col].astype(str).to_numpy(),
            "i": frame[item_col].astype(str).to_numpy(),
            "r": frame[relevance_col].astype(float).to_numpy(),
        }
    ).drop_duplicates(["q", "i"], keep="last")  # a dict keeps the last value of a key
    t = t[t["r"].to_numpy() > 0]
    q = uq.get_indexer(pd.Index(t["q"]))
    t, q = t[q >= 0], q[q >= 0]
    i_codes, items = pd.factorize(t["i"])
    keys = q.astype(np.int64) * max(len(items), 1) + i_codes
    order = np.argsort(keys, kind="stable")
    rel = t["r"].to_numpy()
    positives = np.bincount(q, minlength=len(uq))
    # Ideal: each query's relevances, highest first, at positions 0.. (ties are equal gains).
    by_rel = np.lexsort((-rel, q))
    qs, rs = q[by_rel], rel[by_rel]
    pos = np.arange(len(qs)) - np.concatenate([[0], np.cumsum(positives)])[qs]
    keep = pos < depth
    grid = np.zeros((len(uq), depth))
    grid[qs[keep], pos[keep]] = _gains(rs[keep], pos[keep])
    return CodedTruth(
        queries=uq,
        cohort=uq.get_indexer(cohort),
        items=pd.Index(items),
        keys=keys[order],
        relevance=rel[order],
        positives=positives,
        ideal=np.cumsum(grid, axis=1),
    )


def _ranked_grids(
    frame: pd.DataFrame, truth: CodedTruth, depth: int, **cols
) -> tuple[np.ndarray, np.ndarray]:
    """(gain grid, first-hit grid), queries x depth, of a long ranked frame (`ranking_order`)."""
    n_q = len(truth.queries)
    gains, first_hits = np.zeros((n_q, depth)), np.zeros((n_q, depth), dtype=bool)
    if frame.empty:
        return gains, first_hits
    item_col = cols.get("item_col", "product_id")
    order, q_codes, q_uniques, i_codes, i_uniques = ranking_order(frame, **cols)
    if i_codes is None or i_uniques is None:
        i_codes, i_uniques = pd.factorize(frame[item_col])
    q_sorted = q_codes[order]
    starts = np.flatnonzero(np.r_[True, q_sorted[1:] != q_sorted[:-1]])
    pos = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    top = order[pos < depth]
    pos = pos[pos < depth]
    # Codes of the frame -> codes of the truth, through the (few) distinct ids only.
    q = truth.queries.get_indexer(pd.Index(q_uniques).astype(str))[q_codes[top]]
    i = truth.items.get_indexer(pd.Index(i_uniques).astype(str))[i_codes[top]]
    inside = q >= 0
    q, i, pos = q[inside], i[inside], pos[inside]
    rel = np.zeros(len(q))
    known = i >= 0
    key = q[known].astype(np.int64) * max(len(truth.items), 1) + i[known]
    at = np.searchsorted(truth.keys, key)
    found = at < len(truth.keys)
    found[found] = truth.keys[at[found]] == key[found]
    rel[np.flatnonzero(known)[found]] = truth.relevance[at[found]]
    hit = np.flatnonzero(rel > 0)
    gains[q[hit], pos[hit]] = _gains(rel[hit], pos[hit])
    # Recall, AP and hit rate count an item once (sets): only its first position counts (rows
    # are in rank order, so np.unique's first index is the first position).
    _, first = np.unique(q[hit].astype(np.int64) * len(truth.items) + i[hit], return_index=True)
    first_hits[q[hit[first]], pos[hit[first]]] = True
    return gains, first_hits


def summarize_frame(
    frame: pd.DataFrame,
    truth: CodedTruth,
    ks: Sequence[int] = (),
    **cols,
) -> tuple[MetricSummary, dict[int, float]]:
    """`summarize` and `ndcg_curve` of a long ranked frame (`rankings_from_frame`'s input and
    keyword arguments), without building any per-query list."""
    depth = max(20, *ks) if ks else 20
    if truth.ideal.shape[1] < depth:
        raise ValueError(f"truth coded to depth {truth.ideal.shape[1]}, {depth} needed")
    gains, first_hits = _ranked_grids(frame, truth, depth, **cols)
    dcg = np.cumsum(gains, axis=1)
    ideal = truth.ideal[:, :depth]
    cohort = truth.cohort[truth.positives[truth.cohort] > 0]  # evaluated queries, cohort order
    hits = np.cumsum(first_hits, axis=1)
    npos = truth.positives[cohort].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap_terms = np.where(first_hits, hits / np.arange(1, depth + 1), 0.0)
        ndcg = dcg[cohort] / ideal[cohort]
    per_query = pd.DataFrame(
        {
            "query_id": truth.queries.to_numpy(dtype=object)[cohort],
            "ndcg_at_10": ndcg[:, 9],
            "recall_at_10": hits[cohort, 9] / npos,
            "recall_at_20": hits[cohort, 19] / npos,
            "map_at_10": np.cumsum(ap_terms, axis=1)[cohort, 9] / np.minimum(npos, 10),
            "hit_rate_at_10": (hits[cohort, 9] > 0).astype(float),
        },
        columns=["query_id", *METRIC_NAMES],
    )
    metrics = {
        name: (float(per_query[name].mean()) if len(per_query) else float("nan"))
        for name in METRIC_NAMES
    }
    summary = MetricSummary(metrics, len(per_query), len(truth.cohort) - len(cohort), per_query)
    curve = {
        k: float(np.mean(np.ascontiguousarray(ndcg[:, k - 1])))
        if len(cohort) and k > 0
        else float("nan")  # NDCG@0 is undefined, as in ndcg_at_k
        for k in ks
    }
    return summary, curve
