"""Ranking dataset: temporal split, no leakage, candidates, labels.

`make_synthetic_warehouse` is a tiny generator with the same structure as the real sample (industry and
menu items drive purchases, size scales quantities), so these tests do not depend on another module.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking.features import FEATURES
from recsys_assets.ranking.token_features import candidate_features

SYN_INDUSTRIES = {
    # industry: (core product ids, {menu item: product ids it needs})
    "chicken": (
        ["P000", "P001", "P002", "P003"],
        {"후라이드": ["P004"], "양념치킨": ["P005"], "치즈볼": ["P006"], "감자튀김": ["P007"]},
    ),
    "pizza": (
        ["P006", "P008", "P009", "P010"],
        {
            "페퍼로니피자": ["P011"],
            "포테이토피자": ["P012"],
            "파스타": ["P013"],
            "치즈볼": ["P006"],
        },
    ),
    "korean": (
        ["P014", "P015", "P016", "P017"],
        {"김치찌개": ["P018"], "된장찌개": ["P019"], "제육볶음": ["P020"], "비빔밥": ["P021"]},
    ),
    "cafe_dessert": (
        ["P022", "P023", "P024", "P025"],
        {"아메리카노": ["P026"], "라떼": ["P027"], "케이크": ["P028"], "빙수": ["P029"]},
    ),
}
N_PRODUCTS = 40


def make_synthetic_warehouse(
    path, n_restaurants: int = 300, seed: int = 0, start: date = date(2024, 1, 1), days: int = 540
) -> duckdb.DuckDBPyConnection:
    rng = np.random.default_rng(seed)
    products = pd.DataFrame(
        {
            "product_id": [f"P{i:03d}" for i in range(N_PRODUCTS)],
            "name": [f"상품{i}" for i in range(N_PRODUCTS)],
            "category": [f"cat{i % 6}" for i in range(N_PRODUCTS)],
            "unit_price": rng.uniform(1000, 50000, N_PRODUCTS).round(0),
        }
    )
    inds = list(SYN_INDUSTRIES)
    rest_rows, ind_rows, order_rows = [], [], []
    for r in range(n_restaurants):
        ind = inds[rng.integers(len(inds))]
        core, items = SYN_INDUSTRIES[ind]
        menu = list(rng.choice(list(items), size=rng.integers(1, 4), replace=False))
        size = ["small", "medium", "large"][rng.integers(3)]
        signup = start + timedelta(days=int(rng.integers(0, days - 20)))
        rid = f"R{r:04d}"
        rest_rows.append(
            (rid, f"{ind} 가게 {r}", "|".join(menu), None, ["서울", "부산"][r % 2], size, signup)
        )
        conf = float(rng.uniform(0.5, 1.0))
        ind_rows.append((rid, ind, conf, "test", datetime(2024, 1, 1)))
        probs = np.full(N_PRODUCTS, 0.03)
        probs[[int(p[1:]) for p in core]] = rng.uniform(0.2, 0.6, len(core))
        for it in menu:
            for p in items[it]:
                probs[int(p[1:])] = 0.7
        scale = {"small": 1.0, "medium": 2.0, "large": 4.0}[size]
        for n_o, d in enumerate(range(0, days, 7)):
            day = signup + timedelta(days=d + int(rng.integers(0, 7)))
            if day >= start + timedelta(days=days):
                break
            buy = rng.random(N_PRODUCTS) < probs
            for p in np.flatnonzero(buy):
                order_rows.append(
                    (
                        f"O{r}-{n_o}",
                        rid,
                        f"P{p:03d}",
                        float(1 + rng.poisson(scale * (1 + 2 * probs[p]))),
                        datetime(day.year, day.month, day.day, 10),
                    )
                )
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE restaurants (restaurant_id VARCHAR, name VARCHAR, menu VARCHAR,
                   description VARCHAR, region VARCHAR, size VARCHAR, signup_date DATE)""")
    con.executemany("INSERT INTO restaurants VALUES (?, ?, ?, ?, ?, ?, ?)", rest_rows)
    con.register("p_df", products)
    con.execute("CREATE TABLE products AS SELECT * FROM p_df")
    con.unregister("p_df")
    orders = pd.DataFrame(
        order_rows, columns=["order_id", "restaurant_id", "product_id", "quantity", "ordered_at"]
    )
    con.register("o_df", orders)
    con.execute(
        "CREATE TABLE orders AS SELECT order_id, restaurant_id, product_id, quantity, "
        "CAST(ordered_at AS TIMESTAMP) AS ordered_at FROM o_df"
    )
    con.unregister("o_df")
    con.execute("""CREATE TABLE restaurant_industry (restaurant_id VARCHAR, industry VARCHAR, confidence DOUBLE,
                   source VARCHAR, labeled_at TIMESTAMP)""")
    con.executemany("INSERT INTO restaurant_industry VALUES (?, ?, ?, ?, ?)", ind_rows)
    return con


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    con = make_synthetic_warehouse(tmp_path_factory.mktemp("rk") / "w.duckdb")
    dset = ds.build_ranking_dataset(con)
    yield con, dset
    con.close()


def _features_of(con, split):
    cols = ", ".join(FEATURES)
    return con.execute(
        f"SELECT restaurant_id, product_id, {cols} FROM rk_candidates WHERE split = $s "
        "ORDER BY restaurant_id, product_id",
        {"s": split},
    ).df()


def test_split_is_temporal(built):
    con, dset = built
    assert dset.cutoff == dset.data_end - timedelta(days=90)
    rows = con.execute(
        "SELECT split, min(signup_date), max(signup_date), max(snapshot) FROM rk_queries "
        "GROUP BY split"
    ).fetchall()
    by = {r[0]: r[1:] for r in rows}
    assert set(by) == {"train", "valid", "test"}
    # Test signed up on/after the cutoff with a full 30-day window; train/valid windows end by the cutoff.
    assert by["test"][0] >= dset.cutoff and by["test"][1] + timedelta(days=30) <= dset.data_end
    assert by["train"][1] + timedelta(days=30) <= dset.cutoff
    assert by["valid"][1] + timedelta(days=30) <= dset.cutoff and by["valid"][0] > by["train"][0]
    # Every training query reads a snapshot taken on/before its sign-up.
    bad = con.execute(
        "SELECT count(*) FROM rk_queries WHERE split <> 'test' AND "
        "(snapshot IS NULL OR snapshot > signup_date)"
    ).fetchall()[0][0]
    assert bad == 0
    assert con.execute(
        "SELECT DISTINCT snapshot FROM rk_queries WHERE split='test'"
    ).fetchall() == [(dset.cutoff,)]


def test_relevance_is_graded_first_window_purchases(built):
    con, dset = built
    grades = {r[0] for r in con.execute("SELECT DISTINCT relevance FROM rk_truth").fetchall()}
    assert grades <= {1, 2, 3, 4} and len(grades) >= 3
    # A restaurant's truth is what it bought in [signup, signup + 30 days), recomputed independently.
    rid, signup = con.execute(
        "SELECT restaurant_id, signup_date FROM rk_queries WHERE split='test' "
        "ORDER BY restaurant_id LIMIT 1"
    ).fetchall()[0]
    expect = dict(
        con.execute(
            "SELECT product_id, sum(quantity) FROM orders WHERE restaurant_id = ? AND ordered_at >= ? "
            "AND ordered_at < ? GROUP BY product_id",
            [rid, signup, signup + timedelta(days=30)],
        ).fetchall()
    )
    got = dict(
        con.execute(
            "SELECT product_id, quantity FROM rk_truth WHERE restaurant_id = ?", [rid]
        ).fetchall()
    )
    assert got == expect
    assert 0 < dset.candidate_recall["test"] <= 1
    assert dset.counts["test_queries"] > 10 and dset.counts["train_queries"] > 50


def test_post_cutoff_orders_never_reach_features(tmp_path):
    con = make_synthetic_warehouse(tmp_path / "a.duckdb", n_restaurants=200, seed=3)
    cfg = ds.RankingConfig()
    d1 = ds.build_ranking_dataset(con, config=cfg)
    before = {s: _features_of(con, s) for s in ("train", "valid", "test")}
    # An absurd spike for one niche product from every restaurant, strictly after the cutoff but inside
    # the data span, plus a brand-new token-like purchase pattern.
    rids = [
        r[0]
        for r in con.execute(
            "SELECT restaurant_id FROM restaurants WHERE signup_date < ?", [d1.cutoff]
        ).fetchall()
    ]
    spike_day = datetime.combine(d1.cutoff, datetime.min.time()) + timedelta(days=1, hours=3)
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, 'P039', 1e6, ?)",
        [(f"SPIKE{i}", rid, spike_day) for i, rid in enumerate(rids)],
    )
    d2 = ds.build_ranking_dataset(con, cutoff=d1.cutoff, config=cfg)
    assert d2.cutoff == d1.cutoff and d2.snapshot_hash != d1.snapshot_hash
    for split in ("train", "valid"):
        pd.testing.assert_frame_equal(before[split], _features_of(con, split))
    # Test-cohort features are as of the cutoff, so they are unchanged too; only labels of test
    # restaurants that bought the spike product can change (they are truth, not features).
    pd.testing.assert_frame_equal(before["test"], _features_of(con, "test"))
    # The serving snapshot (data end) does see it: proves the spike was inside the data.
    gp = con.execute(
        "SELECT global_penetration FROM rk_snap_prod WHERE snapshot = ? AND product_id = 'P039'",
        [d2.serving_snapshot],
    ).fetchall()[0][0]
    assert gp > 0.5
    con.close()


def test_snapshot_industry_statistics_are_the_warehouse_tables_as_of_the_snapshot(built):
    """rk_snap_ind_prod is industry_product_stats / industry_top_products computed as of its date.

    That is what lets the industry-popularity baseline read the cutoff snapshot instead of
    rebuilding the warehouse tables, so it is checked against the warehouse builders themselves.
    """
    from recsys_assets.warehouse import tables

    con, dset = built
    as_of = datetime.combine(dset.cutoff, datetime.min.time())
    tables.build_industry_product_stats(con, as_of=as_of, table="t_stats_at_cutoff")
    tables.build_industry_top_products(
        con, k=50, stats_table="t_stats_at_cutoff", table="t_top_at_cutoff"
    )
    stats = con.execute(
        "SELECT industry, product_id, penetration, smoothed_penetration, lift, recency_score, "
        "quantity / industry_restaurants FROM t_stats_at_cutoff ORDER BY industry, product_id"
    ).fetchall()
    snap = con.execute(
        "SELECT industry, product_id, ind_penetration, ind_smoothed_penetration, ind_lift, ind_recency_score, "
        "ind_qty_per_restaurant FROM rk_snap_ind_prod WHERE snapshot = ? ORDER BY industry, product_id",
        [dset.cutoff],
    ).fetchall()
    assert len(snap) == len(stats) > 100
    for got, want in zip(snap, stats, strict=True):
        assert got[:2] == want[:2] and got[2:] == pytest.approx(want[2:], rel=1e-12)
    top = con.execute(
        "SELECT industry, rank, product_id FROM t_top_at_cutoff ORDER BY industry, rank"
    ).fetchall()
    ranked = con.execute(
        "SELECT industry, ind_rank, product_id FROM rk_snap_ind_prod WHERE snapshot = ? "
        "AND ind_rank <= 50 ORDER BY industry, ind_rank",
        [dset.cutoff],
    ).fetchall()
    assert ranked == top and len({r[0] for r in top}) == len(SYN_INDUSTRIES)
    con.execute("DROP TABLE t_stats_at_cutoff; DROP TABLE t_top_at_cutoff")


def test_menu_token_association_finds_the_menu_driven_product(built):
    con, dset = built
    # Restaurants with 치즈볼 on the menu buy P006 (mozzarella) far more than the average restaurant.
    lift = con.execute(
        "SELECT lift FROM rk_snap_token_prod WHERE snapshot = ? AND token = '치즈볼' "
        "AND product_id = 'P006'",
        [dset.cutoff],
    ).fetchall()[0][0]
    other = con.execute(
        "SELECT max(lift) FROM rk_snap_token_prod WHERE snapshot = ? AND token = '치즈볼' "
        "AND product_id NOT IN ('P006')",
        [dset.cutoff],
    ).fetchall()[0][0]
    assert lift > 1.5 and lift > other


def test_menu_token_basket_share_finds_the_menu_driven_product(built):
    """A snapshot's basket shares are each restaurant's quantity shares averaged (so they sum to
    one); restaurants with 치즈볼 on the menu give P006 a larger share than restaurants on
    average, so a 치즈볼 menu lifts P006, and a menu without a known token gets no lift at all."""
    con, dset = built
    total = con.execute(
        "SELECT sum(basket_share) FROM rk_snap_basket WHERE snapshot = ?", [dset.cutoff]
    ).fetchall()[0][0]
    assert total == pytest.approx(1.0)
    mean_with_token, overall = con.execute(
        "SELECT ts.share_sum / t.n_t, b.basket_share FROM rk_snap_token_share ts "
        "JOIN rk_snap_token t USING (snapshot, token) "
        "JOIN rk_snap_basket b USING (snapshot, product_id) "
        "WHERE ts.snapshot = ? AND ts.token = '치즈볼' AND ts.product_id = 'P006'",
        [dset.cutoff],
    ).fetchall()[0]
    assert mean_with_token > 2 * overall
    f = _features_for_menus(con, dset, {"cheese": ["치즈볼"], "none": ["특선메뉴"]})
    assert f.loc[("cheese", "P006"), "token_share_log_lift_max"] > 0.5
    lifts = f.loc["cheese", "token_share_log_lift_max"]
    assert lifts.idxmax() == "P006"
    assert (
        (f.loc["none", ["token_share_log_lift_max", "token_share_log_lift_sum"]] == 0).all().all()
    )
    # no menu evidence: the share features fall back to the product's overall basket share
    basket = dict(
        con.execute(
            "SELECT product_id, basket_share FROM rk_snap_basket WHERE snapshot = ?", [dset.cutoff]
        ).fetchall()
    )
    none = f.loc["none"]
    assert none["token_share_max"].to_dict() == pytest.approx(
        {p: basket.get(p, 0.0) for p in none.index}
    )


def _features_for_menus(con, dset, menus: dict[str, list[str]], config=None):
    """Candidate features at the cutoff for pizza restaurants with these menu tokens, through the
    shared SQL (the way serving runs it: rk_queries / rk_menu_tokens as views of one cursor)."""
    q = pd.DataFrame(
        {
            "restaurant_id": list(menus),
            "snapshot": [dset.cutoff] * len(menus),
            "industry": ["pizza"] * len(menus),
            "industry_code": [0] * len(menus),
            "label_confidence": [1.0] * len(menus),
            "region_code": pd.array([None] * len(menus), dtype="Int64"),
            "size_ord": pd.array([None] * len(menus), dtype="Int64"),
        }
    )
    toks = pd.DataFrame(
        [(rid, tok) for rid, ts in menus.items() for tok in ts], columns=["restaurant_id", "token"]
    ).astype(object)
    params = ds.candidate_params(replace(dset.config, **(config or {})))
    cur = con.cursor()
    try:
        cur.register("rk_queries", q)
        cur.register("rk_menu_tokens", toks)
        with candidate_features(cur, params) as text:
            frame = cur.execute(f"SELECT * FROM ({text})").df()
    finally:
        cur.close()
    return frame.set_index(["restaurant_id", "product_id"])


def test_a_dish_written_the_house_way_counts_as_the_dish(built):
    """특치즈볼 and 치즈볼세트 are words no earlier menu had, but they contain the known token 치즈볼:
    the restaurant gets the plain spelling's menu evidence; a word containing no known token gets
    none, and so does the house spelling when the match is switched off."""
    con, dset = built
    menus = {"plain": ["치즈볼"], "house": ["특치즈볼", "치즈볼세트"], "other": ["특선메뉴"]}
    f = _features_for_menus(con, dset, menus)
    cols = ["token_lift_max", "token_log_lift_mean", "n_known_tokens", "token_pen_max"]
    assert f.loc[("house", "P006"), cols].tolist() == f.loc[("plain", "P006"), cols].tolist()
    assert f.loc[("house", "P006"), "token_lift_max"] > 1.5
    assert (f.loc["other", "n_known_tokens"] == 0).all()
    off = _features_for_menus(con, dset, menus, {"token_contain_min_len": 100})
    assert (off.loc["house", "n_known_tokens"] == 0).all()
    assert (off.loc["plain", "n_known_tokens"] == 1).all()


def test_cutoff_from_environment(built, monkeypatch):
    from recsys_assets.config import load_settings

    con, _ = built
    monkeypatch.setenv("RECSYS_RANK_CUTOFF", "2025-01-15")
    assert ds.resolve_cutoff(con, load_settings().ranking.cutoff) == date(2025, 1, 15)
    assert ds.resolve_cutoff(con, "2024-12-01") == date(2024, 12, 1)
    _, end = ds.data_span(con)
    assert ds.resolve_cutoff(con) == end - timedelta(
        days=ds.HOLDOUT_DAYS
    )  # env no longer read here


def test_menu_tokens():
    assert ds.menu_tokens(" 치즈볼 | 후라이드  치킨|치즈볼|") == [
        "치즈볼",
        "후라이드 치킨",
        "후라이드",
        "치킨",
    ]
    # Prices and emoji are not part of the dish: the same token as the plain spelling.
    assert ds.menu_tokens("치즈볼 4,500원|🍗양념치킨 21500") == ["치즈볼", "양념치킨"]
    assert ds.menu_tokens(None) == [] and ds.menu_tokens("") == []


def test_model_beats_industry_popularity_on_generated_sample(tmp_path):
    """The real generator (reduced to 1,000 restaurants), the real ingest and the offline labeler."""
    from recsys_assets.ranking.evaluate import evaluate
    from recsys_assets.ranking.train import train_ranker
    from tests.offline_warehouse import offline_labeled_warehouse

    con, files = offline_labeled_warehouse(tmp_path, 42, 1000)
    dset = ds.build_ranking_dataset(con)
    ev = evaluate(con, train_ranker(con, dset), dset, ground_truth_dir=files.ground_truth)
    model = ev.metrics["ndcg_at_10"]
    industry = ev.baselines["industry_popularity"]["ndcg_at_10"]
    oracle = ev.baselines["oracle"]["ndcg_at_10"]
    assert ev.queries_evaluated >= 100
    assert model > industry, f"model {model:.4f} <= industry popularity {industry:.4f}"
    assert model > ev.baselines["global_popularity"]["ndcg_at_10"]
    assert model < oracle  # the generator's expected demand is an upper bound
    con.close()


def test_the_kept_iteration_is_the_best_of_the_smoothed_validation_curve():
    from recsys_assets.ranking.train import smoothed_best_iteration

    # One lucky iteration early (a small validation set's noise), a sustained plateau later.
    curve = [0.40, 0.49, 0.41, 0.42, 0.44, 0.46, 0.47, 0.47, 0.48, 0.47, 0.47, 0.46]
    assert smoothed_best_iteration(curve, 1) == 2  # what early stopping alone keeps
    assert smoothed_best_iteration(curve, 5) == 9  # the middle of the plateau (1-based)
    assert smoothed_best_iteration([], 5) == 0


def test_the_trained_booster_holds_exactly_the_kept_trees(built):
    from recsys_assets.ranking.train import train_ranker

    con, dset = built
    for window in (1, 21):
        trained = train_ranker(con, dset, {"best_iteration_window": window})
        assert trained.params["best_iteration_window"] == window
        assert 1 <= trained.best_iteration == trained.booster.current_iteration()
        assert trained.booster.best_iteration == trained.best_iteration


def test_candidates_built_in_blocks_equal_one_statement_over_all_queries(tmp_path, monkeypatch):
    """rk_candidates is built per block of queries in snapshot order (here 7 of them, so
    snapshots split, and some blocks hold two): the rows and values are those of the one
    statement over rk_queries."""
    con = make_synthetic_warehouse(tmp_path / "w.duckdb", n_restaurants=150, seed=3)
    monkeypatch.setattr(ds, "CANDIDATE_BLOCK_QUERIES", 7)
    dset = ds.build_ranking_dataset(con)
    blocks = con.execute(
        "SELECT count(DISTINCT snapshot) AS n FROM (SELECT snapshot, (row_number() OVER "
        "(ORDER BY snapshot, restaurant_id) - 1) // 7 AS b FROM rk_queries) GROUP BY b"
    ).fetchall()
    assert len(blocks) > 3 and max(blocks)[0] == 2
    from recsys_assets.ranking import sql

    with candidate_features(con, ds.candidate_params(dset.config)) as features:
        text = sql.load("candidates", {"candidate_features": features, "queries": "rk_queries"})
        whole = con.execute(f"SELECT * FROM ({text}) ORDER BY restaurant_id, product_id").df()
    built = con.execute("SELECT * FROM rk_candidates ORDER BY restaurant_id, product_id").df()
    assert len(built) == len(whole) > 0
    pd.testing.assert_frame_equal(built, whole, check_exact=False, rtol=1e-12, atol=1e-12)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert not tables & {"rk_query_block", "rk_query_blocks", "rk_candidates_new"}  # gone
    assert not {t for t in tables if t.startswith("rk_cf_")}

    # A block that fails leaves the previous rk_candidates as it was, and no partial table.
    real, calls = ds.candidate_features, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("block failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(ds, "candidate_features", failing)
    with pytest.raises(RuntimeError, match="block failed"):
        ds._build_candidates(con, replace(dset.config, n_global_candidates=1))
    again = con.execute("SELECT * FROM rk_candidates ORDER BY restaurant_id, product_id").df()
    pd.testing.assert_frame_equal(again, built)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "rk_candidates_new" not in tables
    con.close()


def test_work_in_background_runs_on_its_own_cursor_and_its_failure_is_raised_after_the_block():
    """`_in_background`: the work sees the database (not the connection's temporary tables) and
    runs beside the block; its failure surfaces once the block is done, and the block's own
    failure wins (after the work has ended)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
    seen: list[tuple] = []

    def work(cur: duckdb.DuckDBPyConnection) -> None:
        seen.append(cur.execute("SELECT x FROM t").fetchall()[0])
        temp = "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'mine'"
        seen.append(cur.execute(temp).fetchall()[0])

    with ds._in_background(con, work):
        con.execute("INSERT INTO t VALUES (2)")
    assert seen[1] == (0,) and seen[0] in {(1,), (2,)}

    def fails(cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute("SELECT * FROM no_such_table")

    done = []
    with (
        pytest.raises(duckdb.CatalogException, match="no_such_table"),
        ds._in_background(con, fails),
    ):
        done.append(con.execute("SELECT count(*) FROM t").fetchall()[0][0])
    assert done == [2]  # the block ran to its end
    with pytest.raises(ValueError, match="block"), ds._in_background(con, fails):
        raise ValueError("block")
    con.close()
