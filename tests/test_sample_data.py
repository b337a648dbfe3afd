"""Behaviour of the synthetic sample-data generator (schemas, integrity, realism, oracle)."""

from __future__ import annotations

import re
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from recsys_assets.sample_data import (
    REFERENCE_END,
    SCALES,
    SampleFiles,
    generate_sample,
    oracle_scores,
)
from recsys_assets.taxonomy import INDUSTRY_CODES

RESTAURANT_COLUMNS = [
    "restaurant_id",
    "name",
    "menu",
    "description",
    "region",
    "size",
    "signup_date",
]
PRODUCT_COLUMNS = ["product_id", "name", "category", "unit_price"]
ORDER_COLUMNS = ["order_id", "restaurant_id", "product_id", "quantity", "ordered_at"]


def _load(files: SampleFiles) -> dict[str, pd.DataFrame]:
    return {
        "restaurants": pd.read_parquet(files.restaurants),
        "products": pd.read_parquet(files.products),
        "orders": pd.read_parquet(files.orders),
        "truth": pd.read_parquet(files.ground_truth / "restaurant_truth.parquet"),
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[SampleFiles, dict[str, pd.DataFrame]]:
    files = generate_sample(tmp_path_factory.mktemp("small"), scale="small", seed=42)
    return files, _load(files)


@pytest.fixture(scope="module")
def lines(small) -> pd.DataFrame:
    """Order lines joined with product names, the restaurant's menu and its true industry."""
    _, d = small
    return (
        d["orders"]
        .merge(
            d["products"][["product_id", "name"]].rename(columns={"name": "product"}),
            on="product_id",
        )
        .merge(d["restaurants"][["restaurant_id", "menu", "signup_date"]], on="restaurant_id")
        .merge(d["truth"][["restaurant_id", "industry"]], on="restaurant_id")
    )


def test_same_seed_gives_identical_frames_and_other_seed_differs(tmp_path: Path):
    a = _load(generate_sample(tmp_path / "a", n_restaurants=150, seed=7))
    b = _load(generate_sample(tmp_path / "b", n_restaurants=150, seed=7))
    c = _load(generate_sample(tmp_path / "c", n_restaurants=150, seed=8))
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key])
    assert not a["restaurants"]["name"].equals(c["restaurants"]["name"])
    assert len(a["orders"]) != len(c["orders"]) or not a["orders"].equals(c["orders"])


def test_schema_and_dtypes(small):
    _, d = small
    r, p, o = d["restaurants"], d["products"], d["orders"]
    assert list(r.columns) == RESTAURANT_COLUMNS
    assert list(p.columns) == PRODUCT_COLUMNS
    assert list(o.columns) == ORDER_COLUMNS
    assert r["restaurant_id"].is_unique
    assert r["restaurant_id"].str.fullmatch(r"R\d{6}").all()
    assert set(r["size"]) == {"small", "medium", "large"}
    assert pd.api.types.is_integer_dtype(o["quantity"])
    assert pd.api.types.is_datetime64_any_dtype(o["ordered_at"])
    assert pd.api.types.is_numeric_dtype(p["unit_price"])
    assert pd.to_datetime(r["signup_date"]).notna().all()
    assert r["region"].str.fullmatch(r"\S+ \S+").all()
    assert r["description"].eq("").any() and r["description"].ne("").any()


def test_scale_sizes(small):
    _, d = small
    n_r, n_lines = SCALES["small"]
    assert len(d["restaurants"]) == n_r
    assert 0.8 * n_lines <= len(d["orders"]) <= 1.2 * n_lines


def test_catalog_is_large_and_realistic(small):
    _, d = small
    p = d["products"]
    assert len(p) >= 300
    assert p["product_id"].is_unique and p["name"].is_unique
    assert p["product_id"].str.fullmatch(r"P\d{4}").all()
    assert p["unit_price"].between(1_000, 200_000).all()
    for category in (
        "육류",
        "수산",
        "채소·과일",
        "가공식품",
        "소스·양념",
        "면·떡",
        "유제품",
        "음료·주류",
        "베이커리재료",
        "커피·차",
        "포장·위생용품",
    ):
        assert (p["category"] == category).sum() >= 5, category
    names = " ".join(p["name"])
    for word in (
        "생닭",
        "튀김가루",
        "치킨무",
        "식용유",
        "18L",
        "춘장",
        "중화면",
        "단무지",
        "원두",
        "우유",
        "피자치즈",
        "도우",
        "버거번",
        "쌀국수면",
        "소주",
        "포장용기",
        "위생장갑",
    ):
        assert word in names, word


def test_all_industries_present_with_a_realistic_mix(small):
    _, d = small
    counts = d["truth"]["industry"].value_counts()
    assert set(counts.index) == set(INDUSTRY_CODES)
    common = ("korean", "chicken", "cafe_dessert", "bunsik", "chinese", "pub", "meat_bbq")
    assert all(counts[c] > 3 * counts["other"] for c in common)
    assert counts["other"] < 0.02 * len(d["truth"])


def test_orders_are_valid(small, lines):
    _, d = small
    o = d["orders"]
    assert (o["quantity"] > 0).all()
    assert o["restaurant_id"].isin(d["restaurants"]["restaurant_id"]).all()
    assert o["product_id"].isin(d["products"]["product_id"]).all()
    day = lines["ordered_at"].dt.normalize()
    assert (day >= pd.to_datetime(lines["signup_date"])).all()
    assert o["ordered_at"].max() < pd.Timestamp(REFERENCE_END + timedelta(days=1))
    # one order = one restaurant at one moment, no repeated product inside it
    per_order = o.groupby("order_id").agg(
        r=("restaurant_id", "nunique"), t=("ordered_at", "nunique")
    )
    assert (per_order["r"] == 1).all() and (per_order["t"] == 1).all()
    assert not o.duplicated(["order_id", "product_id"]).any()
    lines_per_order = o.groupby("order_id").size().mean()
    assert 2.0 <= lines_per_order <= 5.0


def test_cold_start_cohort_has_a_full_first_month(small, lines):
    _, d = small
    r = d["restaurants"].assign(signup_date=lambda f: pd.to_datetime(f["signup_date"]))
    end = pd.Timestamp(REFERENCE_END)
    cohort = r[r["signup_date"] > end - pd.Timedelta(days=90)]
    assert 150 <= len(cohort) <= 600
    assert (r["signup_date"] <= end - pd.Timedelta(days=30)).all()
    first_month = lines[
        lines["restaurant_id"].isin(cohort["restaurant_id"])
        & (lines["ordered_at"] < pd.to_datetime(lines["signup_date"]) + pd.Timedelta(days=30))
    ]
    assert first_month["restaurant_id"].nunique() >= 0.9 * len(cohort)
    span = (r["signup_date"].max() - r["signup_date"].min()).days
    assert 450 <= span <= 560


def _buy_rate(lines: pd.DataFrame, industry: str, menu_pattern: str, product_pattern: str) -> tuple:
    sub = lines[lines["industry"] == industry]
    has_item = sub["menu"].str.contains(menu_pattern, regex=True)
    buys = sub["product"].str.contains(product_pattern, regex=True)
    return buys[has_item].mean(), buys[~has_item].mean(), has_item.sum(), (~has_item).sum()


def test_orders_depend_on_menu_items_not_only_industry(lines):
    with_cheese, without, n_with, n_without = _buy_rate(lines, "chicken", "치즈", "모짜렐라|치즈볼")
    assert n_with > 200 and n_without > 200
    assert with_cheese > 3 * without
    with_jjolmyeon, without, *_ = _buy_rate(lines, "bunsik", "쫄면", "쫄면")
    assert with_jjolmyeon > 3 * without
    with_bingsu, without, *_ = _buy_rate(lines, "cafe_dessert", "빙수|Bingsu", "빙수|연유|팥")
    assert with_bingsu > 3 * without


def test_seasonality_and_common_supplies(lines):
    cafes = lines[lines["industry"] == "cafe_dessert"]
    month = cafes["ordered_at"].dt.month
    ice = cafes["product"].str.contains("빙수용 우유얼음|아이스컵")
    summer, winter = ice[month.isin([6, 7, 8])].mean(), ice[month.isin([12, 1, 2])].mean()
    assert summer > 2 * winter
    # packaging and gloves are bought across (almost) all industries
    for word in ("포장용기", "위생장갑"):
        buyers = lines[lines["product"].str.contains(word)]["industry"].nunique()
        assert buyers >= 15, word


def test_size_drives_volume(small, lines):
    _, d = small
    t = d["truth"]
    days = (pd.to_datetime(t["active_until"]) - pd.to_datetime(t["signup_date"])).dt.days + 1
    qty = lines.groupby("restaurant_id")["quantity"].sum().reindex(t["restaurant_id"]).fillna(0)
    per_day = pd.Series(qty.to_numpy() / days.to_numpy(), index=t["size"].to_numpy())
    means = per_day.groupby(level=0).mean()
    assert means["large"] > 2 * means["medium"] > 2 * means["small"] / 1.5
    assert means["large"] > 3 * means["small"]


def test_hard_cases_are_present(small):
    _, d = small
    r, t = d["restaurants"], d["truth"]
    n = len(r)
    flags = t["hard_cases"].str.split(",").explode()
    for flag in (
        "misleading_name",
        "mixed_menu",
        "empty_menu",
        "english_name",
        "price_in_items",
        "emoji",
        "stray_whitespace",
        "spelling_variant",
    ):
        share = (flags == flag).sum() / n
        assert 0.01 <= share <= 0.12, (flag, share)
    assert (r["menu"] == "").sum() >= 0.01 * n
    assert r["name"].str.fullmatch(r"[A-Za-z0-9 &'.\-]+").sum() >= 0.01 * n
    assert r["menu"].str.contains(r"\d[\d,]{3,}\s*원?(?:\||$)").sum() >= 0.01 * n
    assert r["menu"].str.contains(r"[\U0001F300-\U0001FAFF☕✨]").any()
    assert (r["menu"].str.contains(r"(?:^|\|) | (?:\||$)|  ")).any()
    joined = "|".join(r["menu"])
    assert (
        sum(
            v in joined
            for v in ("돈가스", "자장면", "프라이드치킨", "카페라테", "크로아상", "아귀찜")
        )
        >= 3
    )
    # a name pointing at one industry over a menu of another: truth follows the menu
    misled = r[t["hard_cases"].str.contains("misleading_name")]
    assert (misled["menu"] != "").all()
    chicken_named = r["name"].str.contains("치킨|통닭|치키치키") & (t["industry"] != "chicken")
    assert chicken_named.any()


def test_csv_matches_parquet_and_is_readable_by_duckdb(tmp_path: Path):
    pq_files = generate_sample(tmp_path / "pq", n_restaurants=120, seed=3, fmt="parquet")
    csv_files = generate_sample(tmp_path / "csv", n_restaurants=120, seed=3, fmt="csv")
    assert csv_files.orders.suffix == ".csv" and pq_files.orders.suffix == ".parquet"
    for key in ("restaurants", "products", "orders"):
        a = pd.read_parquet(getattr(pq_files, key))
        b = pd.read_csv(getattr(csv_files, key), keep_default_na=False, encoding="utf-8")
        assert list(a.columns) == list(b.columns)
        for col in a.columns:
            if pd.api.types.is_datetime64_any_dtype(a[col]):
                b[col] = pd.to_datetime(b[col]).astype(a[col].dtype)
            elif col == "signup_date":
                a[col] = a[col].astype(str)
            assert a[col].tolist() == b[col].tolist(), (key, col)
    con = duckdb.connect()

    def column_types(path: Path) -> dict[str, str]:
        rows = con.execute("DESCRIBE SELECT * FROM read_csv_auto(?)", [str(path)]).fetchall()
        return {row[0]: row[1] for row in rows}

    types = column_types(csv_files.orders)
    assert types["quantity"] in ("BIGINT", "INTEGER") and types["ordered_at"] == "TIMESTAMP"
    rtypes = column_types(csv_files.restaurants)
    assert rtypes["signup_date"] == "DATE" and rtypes["menu"] == "VARCHAR"


def test_oracle_scores_rank_true_demand(small, lines):
    files, d = small
    r, t = d["restaurants"], d["truth"]
    end = pd.Timestamp(REFERENCE_END)
    recent = pd.to_datetime(r["signup_date"]) > end - pd.Timedelta(days=90)
    cohort = r.loc[recent, "restaurant_id"].tolist()
    scores = oracle_scores(files.ground_truth, cohort)
    assert list(scores.columns) == ["restaurant_id", "product_id", "score"]
    assert set(scores["restaurant_id"]) == set(cohort)
    assert (scores["score"] > 0).all()
    assert scores["product_id"].isin(d["products"]["product_id"]).all()
    per_r = scores.groupby("restaurant_id").size()
    assert per_r.min() >= 20 and per_r.max() <= len(d["products"])

    # the oracle ranks each cohort restaurant's first-month purchases better than industry
    # popularity does
    window_end = pd.to_datetime(lines["signup_date"]) + pd.Timedelta(days=30)
    first = lines[lines["restaurant_id"].isin(cohort) & (lines["ordered_at"] < window_end)]
    truth_sets = first.groupby("restaurant_id")["product_id"].apply(set)
    history = lines[lines["ordered_at"] < end - pd.Timedelta(days=90)]
    popular = (
        history.groupby(["industry", "product_id"])["quantity"]
        .sum()
        .reset_index()
        .sort_values("quantity", ascending=False)
        .groupby("industry")["product_id"]
        .apply(lambda s: set(s.head(10)))
    )
    oracle_top = (
        scores.sort_values("score", ascending=False)
        .groupby("restaurant_id")["product_id"]
        .apply(lambda s: set(s.head(10)))
    )
    industry = t.set_index("restaurant_id")["industry"]

    def recall(top) -> float:
        hits = [len(top(rid) & got) / min(10, len(got)) for rid, got in truth_sets.items()]
        return float(np.mean(hits))

    oracle_recall = recall(lambda rid: oracle_top[rid])
    popularity_recall = recall(lambda rid: popular[industry[rid]])
    assert oracle_recall > popularity_recall + 0.05

    # and it is calibrated: per product, expected first-month quantities track actual purchases
    actual = first.groupby("product_id")["quantity"].sum()
    expected = scores.groupby("product_id")["score"].sum()
    both = pd.concat([actual, expected], axis=1).fillna(0.0)
    assert both.corr().iloc[0, 1] > 0.8
    assert 0.8 < expected.sum() / actual.sum() < 1.25

    with pytest.raises(ValueError, match=r"1 unknown restaurant ids, e\.g\. \['R999999'\]"):
        oracle_scores(files.ground_truth, ["R999999"])


def test_ground_truth_is_a_separate_folder(small):
    files, d = small
    assert files.ground_truth.is_dir()
    assert files.ground_truth == files.orders.parent / "ground_truth"
    assert (files.ground_truth / "restaurant_truth.parquet").is_file()
    for path in (files.restaurants, files.products, files.orders):
        assert files.ground_truth not in path.parents
    assert "industry" not in d["restaurants"].columns
    assert set(d["truth"]["industry"]) <= set(INDUSTRY_CODES)


def test_invalid_arguments_are_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match=r"scale must be one of .*, got 'huge'"):
        generate_sample(tmp_path, scale="huge")
    with pytest.raises(ValueError, match=r"fmt must be one of .*, got 'xlsx'"):
        generate_sample(tmp_path, fmt="xlsx")
    with pytest.raises(ValueError, match="n_restaurants must be >= 1"):
        generate_sample(tmp_path, n_restaurants=0)


def test_menu_text_has_no_separator_artifacts(small):
    _, d = small
    menus = d["restaurants"]["menu"]
    items = menus[menus != ""].str.split("|").explode()
    assert items.str.strip().ne("").all()
    assert not re.search(r"\|\|", "\n".join(menus))


# --- the faster generator writes the same bytes ---------------------------------------------------
def _dense_sample_products(model, rest, line_rest, line_month, rng):
    """sample_data._sample_products before the sparse rows (the oracle: full-width sums)."""
    import recsys_assets.sample_data as sd

    n, n_p = len(rest["ids"]), model.n_products
    out = np.empty(len(line_rest), dtype=np.int32)
    noise_set = rng.integers(0, n_p, size=(n, sd._NOISE_SET))
    is_noise = rng.random(len(line_rest)) < sd._NOISE_SHARE
    pick = rng.integers(0, sd._NOISE_SET, size=len(line_rest))
    out[is_noise] = noise_set[line_rest[is_noise], pick[is_noise]]
    u_all = rng.random(len(line_rest))
    item_rows, item_ids, chunk = rest["item_rows"], rest["item_ids"], sd._CHUNK_RESTAURANTS
    bounds = np.searchsorted(line_rest, np.arange(0, n + chunk, chunk))
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        lo, hi = bounds[c0 // chunk], bounds[c0 // chunk + 1]
        sel_items = (item_rows >= c0) & (item_rows < c1)
        counts = np.zeros((c1 - c0, len(model.items)))
        np.add.at(counts, (item_rows[sel_items] - c0, item_ids[sel_items]), 1.0)
        weights = model.structural_weights(rest["industry_idx"][c0:c1], counts)
        rl, months, u = line_rest[lo:hi] - c0, line_month[lo:hi], u_all[lo:hi]
        structural, chunk_out = ~is_noise[lo:hi], out[lo:hi]
        offsets = np.arange(c1 - c0, dtype=float)[:, None]
        for m in np.unique(months[structural]):
            sel = structural & (months == m)
            cum = np.cumsum(weights * model.season[m][None, :], axis=1)
            cum /= cum[:, -1:]
            idx = np.searchsorted((cum + offsets).ravel(), rl[sel] + u[sel], side="right")
            chunk_out[sel] = np.minimum(idx - rl[sel] * n_p, n_p - 1)
        out[lo:hi] = chunk_out
    return out


def _dense_draw_lines(model, world, weights, rl, months, early, u, structural, out):
    """sample_worlds._draw_lines before the sparse rows (the oracle)."""
    import recsys_assets.sample_worlds as sw

    n_p = model.n_products
    season, boost = sw._season(model, world), sw._boost_vector(model, world)
    out = out.copy()
    for m in np.unique(months[structural]):
        for first_month in (False, True):
            sel = structural & (months == m) & (early == first_month)
            if not sel.any():
                continue
            rows = np.unique(rl[sel])
            w = weights[rows] * season[m][None, :] * (boost[None, :] if first_month else 1.0)
            cum = np.cumsum(w, axis=1)
            cum /= cum[:, -1:]
            local = np.searchsorted(rows, rl[sel])
            flat = (cum + np.arange(len(rows), dtype=float)[:, None]).ravel()
            idx = np.searchsorted(flat, local + u[sel], side="right")
            out[sel] = np.minimum(idx - local * n_p, n_p - 1)
    return out


def _sorted_weighted_sample(rnd, items, weights, k):
    """sample_data._weighted_sample before it drew the keys in a list (the oracle)."""
    keyed = sorted(((rnd.random() ** (1.0 / w), i) for i, w in enumerate(weights)), reverse=True)
    return [items[i] for _, i in keyed[:k]]


def _lexsort_rank_then_product(order_rank, n_lines, product):
    """sample_data.rank_then_product before the block sort (the oracle)."""
    return np.lexsort((product, order_rank[np.repeat(np.arange(len(order_rank)), n_lines)]))


@pytest.mark.parametrize(("world", "fmt"), [("default", "parquet"), ("recipe", "csv")])
def test_generated_files_are_byte_identical_to_the_dense_generator(
    tmp_path: Path, monkeypatch, world: str, fmt: str
):
    """The sparse inverse-CDF draws, the block sort of the lines and the faster weighted sample
    change no byte of a sample (the worlds benchmarks and every seed's results depend on it): the
    old code is the oracle."""
    import recsys_assets.sample_data as sd
    import recsys_assets.sample_worlds as sw

    def digests(root: Path) -> dict[str, bytes]:
        return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}

    generate_sample(tmp_path / "new", n_restaurants=5000, seed=5, fmt=fmt, world=world)
    monkeypatch.setattr(sd, "_sample_products", _dense_sample_products)
    monkeypatch.setattr(sw, "_draw_lines", _dense_draw_lines)
    monkeypatch.setattr(sd, "_weighted_sample", _sorted_weighted_sample)
    monkeypatch.setattr(sd, "rank_then_product", _lexsort_rank_then_product)
    generate_sample(tmp_path / "old", n_restaurants=5000, seed=5, fmt=fmt, world=world)
    new, old = digests(tmp_path / "new"), digests(tmp_path / "old")
    assert len(new) >= 8 and new.keys() == old.keys()
    assert [name for name in new if new[name] != old[name]] == []


def test_sparse_rows_draw_what_the_full_rows_draw():
    """Edge cases of the inverse-CDF draw: zero weights first and last, a draw that rounds to the
    end of its row, rows of different widths; the full-width search is the oracle."""
    from recsys_assets.sample_data import SparseRows

    rng = np.random.default_rng(0)
    weights = rng.random((300, 50)) * (rng.random((300, 50)) < 0.15)
    weights[:, 0], weights[:, -1], weights[7, :] = 0.0, 0.0, 0.0
    weights[7, 3] = 2.0  # a row with one product
    rows_all = np.arange(300)
    weights[rows_all, rng.integers(1, 49, 300)] += 0.5  # no empty row
    rl = np.sort(rng.integers(0, 300, 20_000))
    u = rng.random(len(rl))
    u[-50:] = np.nextafter(1.0, 0.0)  # rl + u rounds up to the next row (rl >= 2)
    sparse = SparseRows(weights)
    rows = np.unique(rl)
    vals, cols = sparse.rows(rows)
    got = sparse.draw(vals, cols, rows, np.searchsorted(rows, rl), rl + u)
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    flat = (cum + rows_all.astype(float)[:, None]).ravel()
    want = np.minimum(np.searchsorted(flat, rl + u, side="right") - rl * 50, 49)
    assert (got == want).all() and sparse.vals.shape[1] < 50
    # past the end of the row, the last column (whose weight is 0: only reachable that way)
    assert (got[-50:] == 49).all() and len(np.unique(got)) > 40


def _sequential_sample(out: Path, n_restaurants: int, seed: int, fmt: str) -> None:
    """generate_sample before the worker threads (the oracle): restaurants, their files, the order
    lines and the ground truth one after the other, the products' chunks in order on one thread."""
    import recsys_assets.sample_data as sd

    model = sd._model()
    out.mkdir(parents=True)
    (out / "ground_truth").mkdir()
    files = sd.SampleFiles(
        out / f"restaurants.{fmt}",
        out / f"products.{fmt}",
        out / f"orders.{fmt}",
        out / "ground_truth",
    )
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_restaurants, 20261031]))
    rest = sd._make_restaurants(model, n_restaurants, rng)
    products_tbl = sd.pa.table(
        {
            "product_id": [f"P{i + 1:04d}" for i in range(model.n_products)],
            "name": [p.name for p in model.products],
            "category": [p.category for p in model.products],
            "unit_price": sd.pa.array([p.price for p in model.products], sd.pa.int64()),
        }
    )
    sd._write_table(rest["table"], files.restaurants, fmt)
    sd._write_table(products_tbl, files.products, fmt)
    scale_r, scale_lines = sd.SCALES["small"]
    params = sd._order_params(rest, scale_lines * n_restaurants / scale_r)
    lines = sd._draw_order_lines(model, rest, params, rng)
    n_lines = sd._write_order_lines(files.orders, fmt, rest["ids"], products_tbl, *lines)
    sd._write_ground_truth(
        model, rest, params, files.ground_truth, seed=seed, scale="small", n_lines=n_lines
    )


class _Synchronous:
    """A ThreadPoolExecutor stand-in that runs every task at once on the calling thread."""

    def __init__(self, max_workers: int | None = None) -> None:
        del max_workers

    def __enter__(self) -> _Synchronous:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn, *args, **kwargs) -> Future:
        done: Future = Future()
        done.set_result(fn(*args, **kwargs))
        return done

    def map(self, fn, *iterables) -> list:
        return list(map(fn, *iterables))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_threaded_generation_writes_the_sequential_bytes(tmp_path: Path, monkeypatch, fmt: str):
    """The restaurant texts drawn beside the order lines, the products' chunks on two threads and
    the files written in parallel change no byte of the sample (several chunks of restaurants,
    3 x 4096 + 1808, and of written lines)."""
    import recsys_assets.sample_data as sd

    def digests(root: Path) -> dict[str, bytes]:
        return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}

    monkeypatch.setattr(sd, "_WRITE_CHUNK_LINES", 200_000)
    generate_sample(tmp_path / "new", n_restaurants=14_096, seed=11, fmt=fmt)
    monkeypatch.setattr(sd, "ThreadPoolExecutor", _Synchronous)
    _sequential_sample(tmp_path / "old", n_restaurants=14_096, seed=11, fmt=fmt)
    new, old = digests(tmp_path / "new"), digests(tmp_path / "old")
    assert len(new) >= 8 and new.keys() == old.keys()
    assert [name for name in new if new[name] != old[name]] == []


def test_orders_grouped_by_restaurant_as_the_stable_sort_groups_them():
    """group_by_restaurant against the stable argsort it replaces (the oracle), with restaurants
    that have no stream order."""
    from recsys_assets.sample_data import group_by_restaurant

    rng = np.random.default_rng(3)
    n_orders = rng.poisson(2.0, size=500)
    n_orders[:3] = 0
    first_day = rng.integers(0, 1000, size=500)
    stream_day = rng.integers(0, 1000, size=int(n_orders.sum()))
    stream_rest = np.repeat(np.arange(500, dtype=np.int32), n_orders)
    order_rest = np.concatenate([np.arange(500, dtype=np.int32), stream_rest])
    by_rest = np.argsort(order_rest, kind="stable")
    got_rest, got_day = group_by_restaurant(n_orders, first_day, stream_day)
    assert got_rest.dtype == order_rest.dtype
    assert np.array_equal(got_rest, order_rest[by_rest])
    assert np.array_equal(got_day, np.concatenate([first_day, stream_day])[by_rest])


def test_weighted_sample_breaks_ties_as_the_pair_sort_did():
    """Equal keys (equal draws and weights) go to the larger index first, as sorting the (key,
    index) pairs in reverse did (the oracle, with the same draws)."""
    import random

    from recsys_assets.sample_data import _weighted_sample

    class Draws(random.Random):
        def __init__(self, values: list[float]) -> None:
            super().__init__(0)
            self.values = iter(values)

        def random(self) -> float:
            return next(self.values)

    draws = [0.5, 0.9, 0.5, 0.2, 0.9, 0.0, 0.0, 0.7]
    weights = [1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 1.0, 3.0]
    items = list("abcdefgh")
    for k in range(len(items) + 1):
        got = _weighted_sample(Draws(draws), items, weights, k)
        assert got == _sorted_weighted_sample(Draws(draws), items, weights, k)
