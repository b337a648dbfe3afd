"""The candidate features (SQL + the numpy token aggregates) against a plain reference on
hand-built snapshot tables.

The code numbers the known tokens and computes each token's default lift once; the reference here
walks every (query, candidate, known token) densely, the way the features are defined in
features.md (the basket-share features read empty share tables here: tests/test_ranking_features.py
covers them). Equal rows and equal values (1e-12) are required,
including: a restaurant with no known token, a product matched by only some tokens, ties in the
default lift, a matched lift below an unmatched default, NULL statistics, and a menu word that
counts as the known token it contains.
"""

from __future__ import annotations

import math
import random
from datetime import date

import duckdb
import pandas as pd
import pytest

from recsys_assets.ranking.token_features import candidate_features

S = date(2025, 1, 1)
PARAMS = {"n_ind": 3, "n_glob": 2, "n_tok": 2, "a": 10.0, "contain_min_len": 2, "share_a": 5.0}
TOKEN_FEATURES = (
    "token_lift_max",
    "token_log_lift_mean",
    "n_known_tokens",
    "token_pen_max",
    "token_qty_max",
    "token_qty_mean",
)


def _warehouse(known, token_prod, menus, n_products=8):
    """An in-memory warehouse holding exactly the tables the feature SQL reads, all at snapshot S:
    `known` {token: n_t}, `token_prod` {(token, product): (lift, pen, qty)}, `menus` {id: tokens}."""
    con = duckdb.connect(":memory:")
    products = [f"P{i}" for i in range(n_products)]
    con.execute(
        "CREATE TABLE rk_snap_prod AS SELECT $s::DATE AS snapshot, p AS product_id, "
        "'c' || (i % 2) AS category, 1.0 / i AS global_penetration, i AS global_rank, "
        "1.0 AS global_trend, 0.1 AS global_new_penetration, i % 2 AS category_code, "
        "ln(1 + i) AS log_unit_price FROM unnest($p) WITH ORDINALITY AS t(p, i)",
        {"s": S, "p": products},
    )
    # Industry "x" ranks the products in reverse order: its top 3 differ from the global top 2.
    con.execute(
        "CREATE TABLE rk_snap_ind_prod AS SELECT snapshot, 'x' AS industry, product_id, "
        "0.5 AS ind_penetration, 0.5 AS ind_smoothed_penetration, 2.0 AS ind_lift, "
        "1.0 AS ind_recency_score, 3.0 AS ind_qty_per_restaurant, "
        "CAST($n + 1 - global_rank AS INTEGER) AS ind_rank, 0.2 AS ind_new_penetration, "
        "1.5 AS ind_new_qty FROM rk_snap_prod",
        {"n": n_products},
    )
    con.execute(
        "CREATE TABLE rk_snap_ind_cat AS SELECT DISTINCT snapshot, 'x' AS industry, category, "
        "1.25 AS ind_cat_affinity FROM rk_snap_prod"
    )
    known_rows = [(S, t, n) for t, n in known.items()]
    con.execute("CREATE TABLE rk_snap_token (snapshot DATE, token VARCHAR, n_t BIGINT)")
    if known_rows:
        con.executemany("INSERT INTO rk_snap_token VALUES (?, ?, ?)", known_rows)
    con.execute(
        "CREATE TABLE rk_snap_token_prod (snapshot DATE, token VARCHAR, product_id VARCHAR, "
        "b_tp BIGINT, lift DOUBLE, pen DOUBLE, qty DOUBLE, token_rank INTEGER)"
    )
    rows = []
    for tok in sorted({t for t, _ in token_prod}):
        entries = sorted(
            ((p, v) for (t, p), v in token_prod.items() if t == tok),
            key=lambda e: (-(e[1][0] if e[1][0] is not None else -1.0), e[0]),
        )
        for rank, (p, (lift, pen, qty)) in enumerate(entries, 1):
            rows.append((S, tok, p, 3, lift, pen, qty, rank))
    if rows:
        con.executemany("INSERT INTO rk_snap_token_prod VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        "CREATE TABLE rk_snap_basket (snapshot DATE, product_id VARCHAR, basket_share DOUBLE)"
    )
    con.execute(
        "CREATE TABLE rk_snap_token_share (snapshot DATE, token VARCHAR, product_id VARCHAR, "
        "share_sum DOUBLE)"
    )
    q = pd.DataFrame(
        {
            "restaurant_id": list(menus),
            "snapshot": [S] * len(menus),
            "industry": ["x"] * len(menus),
            "industry_code": [0] * len(menus),
            "label_confidence": [1.0] * len(menus),
            "region_code": pd.array([None] * len(menus), dtype="Int64"),
            "size_ord": pd.array([None] * len(menus), dtype="Int64"),
        }
    )
    con.register("q_df", q)
    con.execute("CREATE TABLE rk_queries AS SELECT * FROM q_df")
    con.unregister("q_df")
    con.execute("CREATE TABLE rk_menu_tokens (restaurant_id VARCHAR, token VARCHAR)")
    pairs = [(r, t) for r, ts in menus.items() for t in dict.fromkeys(ts)]
    if pairs:
        con.executemany("INSERT INTO rk_menu_tokens VALUES (?, ?)", pairs)
    return con


def _sql_features(con) -> dict:
    with candidate_features(con, PARAMS) as text:
        frame = con.execute(f"SELECT * FROM ({text})").df()
    return {
        (r.restaurant_id, r.product_id): {c: getattr(r, c) for c in TOKEN_FEATURES}
        for r in frame.itertuples()
    }


def _query_tokens(menu, known, min_len):
    """The query's known tokens: the menu's known words, and for every other word the longest
    known tokens (at least min_len characters) it contains."""
    out = {t for t in menu if t in known}
    for word in menu:
        inner = [k for k in known if len(k) >= min_len and len(word) > len(k) and k in word]
        if inner:
            longest = max(len(k) for k in inner)
            out |= {k for k in inner if len(k) == longest}
    return sorted(out)


def _reference(known, token_prod, menus, n_products=8) -> dict:
    """The features, walked densely: every candidate x every known token of the query."""
    a = PARAMS["a"]
    products = [f"P{i}" for i in range(n_products)]
    out = {}
    for rid, menu in menus.items():
        toks = _query_tokens(menu, known, PARAMS["contain_min_len"])
        cand = set(products[: PARAMS["n_glob"]]) | set(products[::-1][: PARAMS["n_ind"]])
        for t in toks:
            ranked = sorted(
                ((p, v) for (tt, p), v in token_prod.items() if tt == t),
                key=lambda e: (-(e[1][0] if e[1][0] is not None else -1.0), e[0]),
            )
            cand |= {p for p, _ in ranked[: PARAMS["n_tok"]]}
        for p in cand:
            if not toks:
                out[(rid, p)] = dict.fromkeys(TOKEN_FEATURES)
                out[(rid, p)].update(token_lift_max=1.0, token_log_lift_mean=0.0, n_known_tokens=0)
                continue
            lifts, pens, qtys = [], [], []
            for t in toks:
                lift, pen, qty = token_prod.get((t, p), (None, None, None))
                lifts.append(lift if lift is not None else a / (known[t] + a))
                pens.append(pen if pen is not None else 0.0)
                qtys.append(qty if qty is not None else 0.0)
            out[(rid, p)] = {
                "token_lift_max": max(lifts),
                "token_log_lift_mean": sum(math.log(v) for v in lifts) / len(toks),
                "n_known_tokens": len(toks),
                "token_pen_max": max(pens),
                "token_qty_max": max(qtys),
                "token_qty_mean": sum(qtys) / len(toks),
            }
    return out


def _assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key, feats in want.items():
        for name, value in feats.items():
            actual = got[key][name]
            if value is None:
                assert actual is None or pd.isna(actual), (key, name, actual)
            else:
                assert actual == pytest.approx(value, rel=1e-12, abs=1e-12), (key, name)


# Defaults a / (n_t + a) with a = 10: n_t 10 -> 0.5, 30 -> 0.25, 90 -> 0.1. 치킨 and 피자 tie.
KNOWN = {"치킨": 10, "피자": 10, "치즈볼": 30, "파스타": 90, "떡볶이": 30}
TOKEN_PROD = {
    ("치킨", "P3"): (2.0, 0.3, 4.0),
    ("피자", "P3"): (0.2, 0.1, 1.0),  # a lift below every unmatched default
    ("치즈볼", "P3"): (0.3, 0.2, 2.0),
    ("치즈볼", "P5"): (3.0, 0.4, 5.0),
    ("파스타", "P6"): (1.5, None, None),  # NULL statistics count as unmatched ones
    ("피자", "P1"): (0.1, 0.05, 0.5),  # matched at the top default only: the tie decides the max
    ("떡볶이", "P0"): (None, 0.2, 1.0),  # a NULL lift counts as the default
}
MENUS = {
    "none": ["라면", "김밥"],  # no known token: no token evidence at all
    "some": ["치킨", "피자", "치즈볼", "파스타"],  # P3 matched by 3 of 4 tokens, P5 by one
    "tie": ["피자", "치킨"],  # P1 matched by 피자 only; 치킨 has the same default
    "inside": ["특치즈볼", "치즈볼세트", "떡볶이"],  # both words contain 치즈볼
    "all": ["피자"],  # every token matched
}


def test_token_features_equal_the_dense_reference_on_the_edge_cases():
    con = _warehouse(KNOWN, TOKEN_PROD, MENUS)
    got = _sql_features(con)
    want = _reference(KNOWN, TOKEN_PROD, MENUS)
    _assert_same(got, want)
    # The edge cases are really there: the values the sparse path has to get right.
    assert got[("none", "P0")]["n_known_tokens"] == 0
    assert got[("none", "P0")]["token_lift_max"] == 1.0
    assert got[("some", "P3")]["token_lift_max"] == 2.0
    assert got[("some", "P6")]["token_pen_max"] == 0.0  # its only entry has a NULL pen
    assert got[("tie", "P1")]["token_lift_max"] == 0.5  # 치킨's default, tied with 피자's
    assert got[("all", "P1")]["token_lift_max"] == 0.1  # no unmatched token to take the max from
    assert got[("all", "P1")]["token_pen_max"] == 0.05
    assert got[("inside", "P5")]["n_known_tokens"] == 2  # 치즈볼 (from both words) and 떡볶이
    assert got[("inside", "P5")]["token_lift_max"] == 3.0
    assert got[("inside", "P0")]["token_lift_max"] == 0.25  # the NULL lift reads as the default


def test_token_features_equal_the_dense_reference_on_random_tables():
    rng = random.Random(7)
    words = [f"w{i}" for i in range(14)]
    for _ in range(5):
        # Few distinct n_t values: many ties in the defaults.
        known = {w: rng.choice([5, 10, 10, 40]) for w in words if rng.random() < 0.7}
        token_prod = {
            (t, f"P{p}"): (
                rng.choice([rng.uniform(0.05, 4.0), 0.5, 0.2]),
                rng.uniform(0, 1),
                rng.uniform(0, 9),
            )
            for t in known
            for p in range(8)
            if rng.random() < 0.35
        }
        menus = {
            f"R{i}": rng.sample(words, rng.randint(0, 9)) + (["xw3y"] if i % 3 == 0 else [])
            for i in range(12)
        }
        con = _warehouse(known, token_prod, menus)
        _assert_same(_sql_features(con), _reference(known, token_prod, menus))
        con.close()
