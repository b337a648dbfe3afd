"""Realistic synthetic data for a Korean food-supply marketplace.

Restaurants, a product catalog and orders. Why synthetic: the pipeline must be runnable and
measurable without customer data. The generator has a known causal model (industry staples +
ingredients of the restaurant's own menu items + kitchen basics, scaled by size, with seasonality
and noise), so a ranking model that reads menus can beat plain industry popularity, and
`oracle_scores` gives the true expected demand as an evaluation upper bound.

The true industry and the causal model are written only to ``<out_dir>/ground_truth/``; the
pipeline's inputs (restaurants, products, orders) never contain them.

The catalog is ``recsys_assets/data/catalog.csv``; what each industry's restaurants sell and buy
(share, menu items and their ingredients, staples, shop names) is the industry's ``sample`` block
in the taxonomy registry ``recsys_assets/data/taxonomy.yaml``.

Large scale (200k restaurants, ~10M order lines) is vectorized with numpy and the orders are
written in chunks, so memory stays bounded. The second core is used where the work is independent:
the restaurant texts' Python loop (its own `random.Random`) runs beside the numpy order draws, the
products are drawn chunk by chunk on two threads, and files are written beside one another. The
random draws keep their order, so a seed gives the same bytes as the sequential code.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys_assets import taxonomy
from recsys_assets.datafiles import DATA_DIR, DataFileError, read_csv_rows
from recsys_assets.taxonomy import OTHER, SampleRecipe, Taxonomy, parse_refs

SCALES: dict[str, tuple[int, int]] = {
    "small": (2_000, 100_000),
    "medium": (20_000, 1_000_000),
    "large": (200_000, 10_000_000),
}
REFERENCE_END = date(2026, 10, 31)
# Sign-ups span ~18 months and stop 30 days before REFERENCE_END, so every restaurant (including the
# most recent cold-start cohort) has a complete first-30-day order window.
HISTORY_DAYS = 548
WINDOW_DAYS = 30
FORMATS = ("parquet", "csv")
SIZES = ("small", "medium", "large")

_SIZE_SHARE = np.array([0.55, 0.35, 0.10])
_SIZE_FREQ = np.array([1.0, 1.6, 2.4])  # relative orders per week
_SIZE_LINES = np.array([2.6, 3.4, 4.5])  # mean lines per order (before merging duplicates)
_SIZE_QTY = np.array([1.0, 1.7, 3.0])  # quantity multiplier
_NOISE_SHARE = 0.12  # share of order lines that are the restaurant's idiosyncratic "other" products
_NOISE_SET = 6  # idiosyncratic products per restaurant
_CHUNK_RESTAURANTS = 4096
_CHURN_MEAN_DAYS = 200.0  # mean extra lifetime after the first 60 days
_MERGE_LOSS = 1.08  # lines lost when duplicate products in one order are merged
# delay (days after sign-up) of the onboarding order: truncated geometric over 0..6
_FIRST_ORDER_DELAY = np.array([0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.015625])
_WRITE_CHUNK_LINES = 1_000_000
_THREADS = 2  # the pipeline's machines have two cores or more
# relative number of orders placed in each hour of the day (0..23)
_HOUR_WEIGHTS = np.array(
    [
        0.2,
        0.1,
        0.05,
        0.05,
        0.1,
        0.3,
        0.8,
        1.5,
        2.5,
        3.0,
        3.0,
        2.2,
        1.5,
        1.8,
        2.6,
        2.8,
        2.4,
        1.8,
        1.2,
        1.0,
        1.2,
        1.8,
        2.2,
        1.0,
    ]
)

# month (1..12) -> demand multiplier
_SEASON = {
    "summer": (0.3, 0.3, 0.5, 0.8, 1.3, 2.2, 3.0, 3.0, 1.6, 0.8, 0.4, 0.3),
    "winter": (2.5, 2.3, 1.4, 0.8, 0.5, 0.3, 0.2, 0.2, 0.4, 0.9, 1.6, 2.4),
}

# The product catalog is recsys_assets/data/catalog.csv; each industry's recipe (share, staples, menu
# items, shop names, ...) is its `sample` block in the taxonomy registry, recsys_assets/data/
# taxonomy.yaml. An industry without one is never generated.
CATALOG_PATH = DATA_DIR / "catalog.csv"
_CATALOG_COLUMNS = ("category", "name", "unit_price", "qty_per_line", "season")

# Bought by every business (packaging, hygiene) and by every kitchen (basics), scaled per industry.
_COMMON_SUPPLIES = (
    "포장용기 원형 500ml*1, 포장용기 원형 1000ml*0.8, 위생장갑*1, 키친타월*0.5, 배달용 비닐봉투*0.6, "
    "개별포장 물티슈*0.4, 주방세제*0.4, 업소용 락스*0.3, 고무장갑*0.2, 니트릴 장갑*0.3, 나무젓가락*0.3"
)
_KITCHEN_BASICS = (
    "식용유 (대두유)*0.8, 쌀 20kg*0.6, 양파*0.6, 대파*0.6, 다진마늘*0.4, 설탕*0.3, 천일염*0.3, 진간장*0.3, "
    "계란*0.4, 업소용 랩*0.2"
)
_SURNAMES = (
    "김",
    "이",
    "박",
    "최",
    "정",
    "강",
    "조",
    "윤",
    "장",
    "임",
    "한",
    "오",
    "서",
    "신",
    "권",
    "황",
)
_FAMILY = ("네", "씨네", "가네", " 할매", " 이모네")
_ADJECTIVES = (
    "원조",
    "옛날",
    "소문난",
    "착한",
    "황금",
    "정직한",
    "우리동네",
    "맛있는",
    "행복한",
    "24시",
)
_DESCRIPTIONS = (
    "{place} {kind} 전문점",
    "신선한 재료로 매일 준비합니다",
    "배달 전문",
    "포장 시 1,000원 할인",
    "정성을 다하는 {kind}",
    "단체 주문 환영",
    "{place}에서 {years}년째 영업 중",
    "24시간 영업",
    "매장 식사 및 배달 가능",
    "주차 가능, 예약 문의 환영",
)
_REGIONS = (
    ("서울 강남구", 5),
    ("서울 서초구", 3),
    ("서울 송파구", 4),
    ("서울 마포구", 3.5),
    ("서울 관악구", 2.5),
    ("서울 영등포구", 2.5),
    ("서울 강서구", 2.5),
    ("서울 광진구", 2),
    ("서울 성동구", 2),
    ("서울 용산구", 1.5),
    ("서울 종로구", 1.5),
    ("서울 중구", 1.5),
    ("서울 노원구", 2),
    ("서울 은평구", 1.5),
    ("부산 해운대구", 2),
    ("부산 부산진구", 2),
    ("부산 수영구", 1),
    ("부산 동래구", 1),
    ("대구 중구", 1),
    ("대구 수성구", 1.5),
    ("인천 연수구", 1.5),
    ("인천 부평구", 1.5),
    ("인천 남동구", 1.5),
    ("광주 서구", 1),
    ("광주 북구", 1),
    ("대전 유성구", 1.2),
    ("대전 서구", 1.2),
    ("울산 남구", 1),
    ("세종 세종시", 0.6),
    ("경기 수원시", 2.5),
    ("경기 성남시", 2.5),
    ("경기 고양시", 2),
    ("경기 용인시", 2),
    ("경기 부천시", 1.5),
    ("경기 화성시", 1.5),
    ("경기 안양시", 1.2),
    ("경기 남양주시", 1),
    ("경기 평택시", 1),
    ("강원 춘천시", 0.7),
    ("강원 강릉시", 0.7),
    ("충북 청주시", 1),
    ("충남 천안시", 1.2),
    ("전북 전주시", 1),
    ("전남 여수시", 0.6),
    ("전남 목포시", 0.5),
    ("경북 포항시", 0.8),
    ("경북 경주시", 0.5),
    ("경남 창원시", 1.2),
    ("경남 김해시", 0.8),
    ("제주 제주시", 1),
    ("제주 서귀포시", 0.5),
)

# Hard-case rates (independent draws; see `_restaurant_text`).
_P_MISLEADING_NAME = 0.04
_P_MIXED_MENU = 0.04
_P_EMPTY_MENU = 0.03
_P_ENGLISH_NAME = 0.04
_P_PRICE_IN_ITEMS = 0.05
_P_EMOJI = 0.03
_P_WHITESPACE = 0.04
_P_ALTERNATIVE = 0.2  # per item with alternative names: use one of them (natural, not a hard case)
_P_SPELLING = 0.03  # per item: apply a common spelling variant / misspelling (hard case)
# (standard, variant) spellings seen on Korean menus; applied in either direction
_SPELLING = (
    ("까스", "가스"),
    ("짜장", "자장"),
    ("후라이드", "프라이드"),
    ("라떼", "라테"),
    ("크루아상", "크로아상"),
    ("마르게리따", "마르게리타"),
    ("리조또", "리조토"),
    ("아구", "아귀"),
    ("카라멜", "캬라멜"),
    ("쭈꾸미", "주꾸미"),
    ("떡볶이", "떡볶기"),
    ("찌개", "찌게"),
    ("케이크", "케잌"),
)


# -------------------------------------------------------------------------------------------------
# Static model tables (built once from the data files)
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Product:
    name: str
    category: str
    price: int
    base_qty: float
    season: str


@dataclass(frozen=True)
class _MenuItem:
    item_id: int
    industry: str
    names: tuple[str, ...]  # canonical first, then alternative names
    english: str | None
    popularity: float
    ingredients: tuple[tuple[int, float], ...]  # (product index, weight)


def _catalog_row(path: Path, line: int, row: dict[str, str]) -> _Product:
    def fail(message: str) -> DataFileError:
        return DataFileError(f"{path}:{line}: {message}")

    if not row["category"] or not row["name"]:
        raise fail("category and name must not be empty")
    try:
        price = int(row["unit_price"])
    except ValueError:
        raise fail(f"unit_price must be a whole number of KRW, got {row['unit_price']!r}") from None
    try:
        qty = float(row["qty_per_line"])
    except ValueError:
        qty = float("nan")
    if price <= 0 or not qty > 0 or qty == float("inf"):
        raise fail(
            f"unit_price and qty_per_line must be positive, got {price}, {row['qty_per_line']!r}"
        )
    if row["season"] and row["season"] not in _SEASON:
        raise fail(f"season must be empty or one of {', '.join(_SEASON)}, got {row['season']!r}")
    return _Product(row["name"], row["category"], price, qty, row["season"])


def _parse_catalog(path: Path = CATALOG_PATH) -> list[_Product]:
    """The catalog CSV, row order = product ids; DataFileError names the file and line."""
    products: list[_Product] = []
    first_line: dict[str, int] = {}
    for line, row in read_csv_rows(path, _CATALOG_COLUMNS):
        product = _catalog_row(path, line, row)
        if product.name in first_line:
            raise DataFileError(
                f"{path}:{line}: duplicate product name {product.name!r} "
                f"(first at line {first_line[product.name]})"
            )
        first_line[product.name] = line
        products.append(product)
    if not products:
        raise DataFileError(f"{path}:1: the catalog has no products")
    return products


class _Model:
    """The generator's static causal tables: catalog, menu items, staples, seasonality."""

    def __init__(self, registry: Taxonomy | None = None, catalog: Path = CATALOG_PATH) -> None:
        tax = registry or taxonomy.DEFAULT
        self.products = _parse_catalog(catalog)
        self.n_products = len(self.products)
        self._names = [p.name for p in self.products]
        self.industries = tax.codes
        self.ind_index = {c: i for i, c in enumerate(self.industries)}
        self.name_ko = {i.code: i.name_ko for i in tax.industries}
        # industries with a sample recipe; the others are never generated
        self.recipes: dict[str, SampleRecipe] = {
            i.code: i.sample for i in tax.industries if i.sample is not None
        }
        self.non_other = [c for c in self.recipes if c != OTHER]
        self.items: list[_MenuItem] = []
        self.items_by_industry: dict[str, list[_MenuItem]] = {c: [] for c in self.industries}
        self._build_items(tax)
        self.popularity = {
            code: [it.popularity for it in items] for code, items in self.items_by_industry.items()
        }
        self.staples = self._build_staples(tax)
        self.item_matrix = np.zeros((len(self.items), self.n_products))
        for it in self.items:
            for p, w in it.ingredients:
                self.item_matrix[it.item_id, p] += w
        self.base_qty = np.array([p.base_qty for p in self.products])
        self.season = np.ones((12, self.n_products))
        for j, product in enumerate(self.products):
            if product.season:
                self.season[:, j] = _SEASON[product.season]

    def share(self, code: str) -> float:
        recipe = self.recipes.get(code)
        return recipe.share if recipe is not None else 0.0

    def resolve(self, ref: str, where: str = "") -> int:
        ref = ref.strip()
        if ref in self._names:
            return self._names.index(ref)
        hits = [i for i, n in enumerate(self._names) if n.startswith(ref)]
        if len(hits) != 1:
            found = [self._names[i] for i in hits][:5]
            raise DataFileError(
                f"{where}product reference {ref!r} matches {found or 'no'} "
                f"catalog product (need exactly one; catalog: {CATALOG_PATH.name})"
            )
        return hits[0]

    def _refs(self, refs: Sequence[tuple[str, float]], where: str = "") -> list[tuple[int, float]]:
        return [(self.resolve(ref, where), weight) for ref, weight in refs]

    def _build_items(self, tax: Taxonomy) -> None:
        for code, recipe in self.recipes.items():
            for entry in recipe.menu:
                where = f"{tax.source}:{entry.line}: industry {code!r} menu item: "
                item = _MenuItem(
                    item_id=len(self.items),
                    industry=code,
                    names=entry.names,
                    english=entry.english,
                    popularity=entry.popularity,
                    ingredients=tuple(self._refs(entry.ingredients, where)),
                )
                self.items.append(item)
                self.items_by_industry[code].append(item)

    def _build_staples(self, tax: Taxonomy) -> np.ndarray:
        staples = np.zeros((len(self.industries), self.n_products))
        basics = self._refs(parse_refs(_KITCHEN_BASICS))
        common = self._refs(parse_refs(_COMMON_SUPPLIES))
        for code, recipe in self.recipes.items():
            i = self.ind_index[code]
            where = f"{tax.source}:{recipe.staples_line}: industry {code!r} staples: "
            for p, w in self._refs(recipe.staples, where):
                staples[i, p] += w
            for p, w in basics:
                staples[i, p] += w * recipe.basics_factor
            for p, w in common:
                staples[i, p] += w
        return staples

    def structural_weights(self, industry_idx: np.ndarray, item_counts: np.ndarray) -> np.ndarray:
        """Unnormalized per-restaurant product weights (rows) from industry staples + menu items."""
        return self.staples[industry_idx] + item_counts @ self.item_matrix


@functools.cache
def _default_model() -> _Model:
    """The packaged taxonomy's model, built once per process."""
    return _Model()


def _model(registry: Taxonomy | None = None) -> _Model:
    """The packaged model, built once; another taxonomy gets a model of its own."""
    if registry is not None and registry is not taxonomy.DEFAULT:
        return _Model(registry)
    return _default_model()


# -------------------------------------------------------------------------------------------------
# Public API
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleFiles:
    restaurants: Path
    products: Path
    orders: Path
    ground_truth: Path  # a separate folder; the pipeline's inputs never read it


def generate_sample(
    out_dir: Path | str,
    scale: str = "small",
    seed: int = 42,
    fmt: str = "parquet",
    n_restaurants: int | None = None,
    progress: bool = False,
    registry: Taxonomy | None = None,
    world: str = "default",
) -> SampleFiles:
    """Write restaurants, products, orders (and the ground truth) for one scale and seed.

    Deterministic: the same (scale, seed, n_restaurants, world) gives identical tables in either
    format. ``registry``: the taxonomy whose industry recipes to use (default: the packaged one).
    ``world``: the generating mechanism (recsys_assets/data/worlds.yaml; ``random`` draws one from
    the seed). The default world is this module's own path, unchanged.
    """
    from recsys_assets import sample_worlds

    chosen_world = sample_worlds.resolve_world(world, seed)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    base_r, base_lines = SCALES[scale]
    n_r = base_r if n_restaurants is None else int(n_restaurants)
    if n_r < 1:
        raise ValueError("n_restaurants must be >= 1")
    target_lines = base_lines * n_r / base_r

    out = Path(out_dir)
    gt_dir = out / "ground_truth"
    out.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)

    ext = "parquet" if fmt == "parquet" else "csv"
    files = SampleFiles(
        restaurants=out / f"restaurants.{ext}",
        products=out / f"products.{ext}",
        orders=out / f"orders.{ext}",
        ground_truth=gt_dir,
    )
    if not chosen_world.is_default:
        return sample_worlds.generate_world_sample(
            files,
            chosen_world,
            n_restaurants=n_r,
            target_lines=target_lines,
            seed=seed,
            scale=scale,
            fmt=fmt,
            registry=registry,
        )
    return _generate_default(
        _model(registry),
        files,
        n_r,
        target_lines,
        seed=seed,
        scale=scale,
        fmt=fmt,
        progress=progress,
    )


def _products_table(model: _Model) -> pa.Table:
    return pa.table(
        {
            "product_id": [f"P{i + 1:04d}" for i in range(model.n_products)],
            "name": [p.name for p in model.products],
            "category": [p.category for p in model.products],
            "unit_price": pa.array([p.price for p in model.products], pa.int64()),
        }
    )


def _generate_default(
    model: _Model,
    files: SampleFiles,
    n_r: int,
    target_lines: float,
    *,
    seed: int,
    scale: str,
    fmt: str,
    progress: bool,
) -> SampleFiles:
    """The default world's sample, the restaurant texts and the other files on a worker thread
    beside the order draws and the orders' writing (same draws, same bytes as sequentially)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_r, 20261031]))
    bar = _progress_bar(progress, total=3, desc=f"sample {scale}")
    products_tbl = _products_table(model)
    # the same draws as _make_restaurants, the texts' Python loop on a worker thread
    facts = _draw_restaurant_facts(model, n_r, rng)
    rnd = random.Random(int(rng.integers(0, 2**63 - 1)))
    with ThreadPoolExecutor(max_workers=1) as worker:
        rest = _PendingRestaurants(facts, worker.submit(_restaurant_texts, model, facts, rnd))
        params = _order_params(rest, target_lines)
        lines = _draw_order_lines(model, rest, params, rng)
        _tick(bar, "restaurants and order lines")
        n_lines = len(lines[3])
        rest_of_sample = worker.submit(
            _write_inputs_and_truth,
            model,
            rest,
            products_tbl,
            params,
            files,
            fmt,
            seed,
            scale,
            n_lines,
        )
        _write_order_lines(files.orders, fmt, rest["ids"], products_tbl, *lines)
        _tick(bar, "orders written")
        rest_of_sample.result()
    _tick(bar, "restaurants, products, ground truth written")
    if bar is not None:
        bar.close()
    return files


class _PendingRestaurants(dict):
    """The restaurants: the drawn facts at once, the texts and menus (a worker thread draws them
    meanwhile) on first use of any other key. Why: the order draws need only the facts until the
    products are drawn, so they overlap the texts' Python loop (the random draws keep their order:
    the loop uses its own `random.Random`)."""

    def __init__(self, facts: dict, texts: Future) -> None:
        super().__init__({k: facts[k] for k in _FACT_KEYS})
        self._texts = texts

    def __missing__(self, key: str):
        self.update(self._texts.result())
        return super().__getitem__(key)


def _write_inputs_and_truth(
    model: _Model,
    rest: dict,
    products_tbl: pa.Table,
    params: dict,
    files: SampleFiles,
    fmt: str,
    seed: int,
    scale: str,
    n_lines: int,
) -> None:
    """Every file but the orders (written meanwhile: pyarrow writes without the GIL)."""
    _write_table(rest["table"], files.restaurants, fmt)
    _write_table(products_tbl, files.products, fmt)
    _write_ground_truth(
        model, rest, params, files.ground_truth, seed=seed, scale=scale, n_lines=n_lines
    )


def oracle_scores(ground_truth_dir: Path | str, restaurant_ids: Sequence[str]) -> pd.DataFrame:
    """True expected quantity per product in each restaurant's first 30 days (noise-free).

    Computed from the true industry, menu items, size and activity stored in the ground truth,
    with the same seasonal weights the generator used. Rows with a zero score are omitted.
    """
    gt = Path(ground_truth_dir)
    params = json.loads((gt / "params.json").read_text(encoding="utf-8"))
    if params.get("world", "default") != "default":
        from recsys_assets.sample_worlds import expected_scores

        return expected_scores(gt, restaurant_ids, visible_only=False)
    truth = pd.read_parquet(gt / "restaurant_truth.parquet")
    ids = list(dict.fromkeys(str(r) for r in restaurant_ids))  # unique, order kept
    pos = pd.Series(np.arange(len(truth)), index=truth["restaurant_id"].astype(str))
    missing = [r for r in ids if r not in pos.index]
    if missing:
        raise ValueError(f"{len(missing)} unknown restaurant ids, e.g. {missing[:3]}")
    if not ids:
        return pd.DataFrame(
            {
                "restaurant_id": pd.Series([], dtype=str),
                "product_id": pd.Series([], dtype=str),
                "score": pd.Series([], dtype=float),
            }
        )
    rows = pos.loc[ids].to_numpy()
    sub = truth.iloc[rows].reset_index(drop=True)

    products = pd.read_parquet(gt / "product_truth.parquet")
    prod_ids = products["product_id"].astype(str).to_numpy()
    n_p = len(products)
    ind_w = pd.read_parquet(gt / "industry_weights.parquet")
    item_w = pd.read_parquet(gt / "item_weights.parquet")
    r_items = pd.read_parquet(gt / "restaurant_items.parquet")
    codes = list(params["industries"])
    ind_idx_map = {c: i for i, c in enumerate(codes)}
    pid_idx = pd.Series(np.arange(n_p), index=prod_ids)

    staples = np.zeros((len(codes), n_p))
    np.add.at(
        staples,
        (
            ind_w["industry"].map(ind_idx_map).to_numpy(),
            pid_idx.loc[ind_w["product_id"]].to_numpy(),
        ),
        ind_w["weight"].to_numpy(),
    )
    n_items = len(pd.read_parquet(gt / "menu_items.parquet", columns=["item_id"]))
    item_matrix = np.zeros((n_items, n_p))
    item_pos = (item_w["item_id"].to_numpy(), pid_idx.loc[item_w["product_id"]].to_numpy())
    np.add.at(item_matrix, item_pos, item_w["weight"].to_numpy())
    counts = _item_counts(sub, r_items, n_items)
    weights = staples[sub["industry"].map(ind_idx_map).to_numpy()] + counts @ item_matrix
    return _expected_quantities(sub, params, products, weights, prod_ids)


def _item_counts(sub: pd.DataFrame, r_items: pd.DataFrame, n_items: int) -> np.ndarray:
    """How often each menu item appears on each restaurant's menu (rows in ``sub`` order)."""
    local = pd.Series(np.arange(len(sub)), index=sub["restaurant_id"].astype(str))
    r_items = r_items[r_items["restaurant_id"].isin(local.index)]
    counts = np.zeros((len(sub), n_items))
    count_pos = (local.loc[r_items["restaurant_id"]].to_numpy(), r_items["item_id"].to_numpy())
    np.add.at(counts, count_pos, 1.0)
    return counts


def _expected_quantities(
    sub: pd.DataFrame,
    params: dict,
    products: pd.DataFrame,
    weights: np.ndarray,
    prod_ids: np.ndarray,
) -> pd.DataFrame:
    """Expected first-30-day quantity per (restaurant, product), month by month; zeros omitted."""
    expected = expected_matrix(sub, params, products["base_qty"].to_numpy(), weights)
    r_ix, p_ix = np.nonzero(expected > 0)
    df = pd.DataFrame(
        {
            "restaurant_id": sub["restaurant_id"].astype(str).to_numpy()[r_ix],
            "product_id": prod_ids[p_ix],
            "score": expected[r_ix, p_ix],
        }
    )
    return df.reset_index(drop=True)


def expected_matrix(
    sub: pd.DataFrame, params: dict, base_qty: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Dense (restaurant x product) expected first-30-day quantity, given product weights.

    ``sub``: restaurant_truth rows (size, signup_date, activity); ``params``: the ground truth's
    params.json (order rates, season matrix). Shared with the other worlds (sample_worlds.py).
    """
    n_p = len(base_qty)

    season = np.asarray(params["season_matrix"], dtype=float)  # 12 x P
    size_idx = sub["size"].map({s: i for i, s in enumerate(SIZES)}).to_numpy()
    signup = pd.to_datetime(sub["signup_date"]).to_numpy().astype("datetime64[D]")
    rows_ix = np.arange(len(sub))
    weekly = np.asarray(params["orders_per_week_by_size"])[size_idx]
    rate = weekly / 7.0 * sub["activity"].to_numpy()
    # expected orders of the 30-day window falling in each calendar month: the Poisson stream
    # plus the onboarding order a few days after sign-up
    month_orders = np.zeros((len(sub), 12))
    for d in range(int(params["window_days"])):
        months = (signup + np.timedelta64(d, "D")).astype("datetime64[M]").astype(int) % 12
        month_orders[rows_ix, months] += rate
    for d, prob in enumerate(params["first_order_delay_probs"]):
        months = (signup + np.timedelta64(d, "D")).astype("datetime64[M]").astype(int) % 12
        month_orders[rows_ix, months] += prob
    lines_per_order = np.asarray(params["lines_per_order_by_size"])[size_idx] * (
        1.0 - float(params["noise_share"])
    )
    qty = np.maximum(
        1.0, base_qty[None, :] * np.asarray(params["qty_mult_by_size"])[size_idx][:, None]
    )
    expected = np.zeros((len(sub), n_p))
    for m in range(12):
        has = month_orders[:, m] > 0
        if not has.any():
            continue
        w = weights[has] * season[m][None, :]
        share = w / w.sum(axis=1, keepdims=True)
        expected[has] += (month_orders[has, m] * lines_per_order[has])[:, None] * share
    return expected * qty


# -------------------------------------------------------------------------------------------------
# Restaurants
# -------------------------------------------------------------------------------------------------
def _weighted_sample(rnd: random.Random, items: Sequence, weights: Sequence[float], k: int) -> list:
    """k distinct items, probability proportional to weight (Efraimidis-Spirakis keys)."""
    draw = rnd.random  # one draw per item, in order: the keys (and the sample) of a seed stay put
    keys = [draw() ** (1.0 / w) for w in weights]
    # Largest key first, ties to the larger index: the order of sorting (key, index) pairs in
    # reverse, 2x faster (a stable sort of the indices from the last, comparing floats only).
    by_key = sorted(range(len(keys) - 1, -1, -1), key=keys.__getitem__, reverse=True)
    return [items[i] for i in by_key[:k]]


def _swap_spelling(text: str) -> str:
    for standard, variant in _SPELLING:
        if standard in text:
            return text.replace(standard, variant, 1)
        if variant in text:
            return text.replace(variant, standard, 1)
    return text


def _is_spelling_variant(canonical: str, text: str) -> bool:
    return any(
        canonical.replace(a, b) == text or canonical.replace(b, a) == text for a, b in _SPELLING
    )


def _place_of(region: str) -> str:
    district = region.rsplit(maxsplit=1)[-1]
    return district[:-1] if len(district) > 2 and district[-1] in "구시군" else district


def _make_name(rnd: random.Random, recipe: SampleRecipe, place: str, english: bool) -> str:
    if english:
        return rnd.choice(recipe.name_english)
    style = rnd.choices(range(5), weights=(2, 1.5, 2, 2.5, 2))[0]
    core = rnd.choice(recipe.name_cores)
    if style == 0:
        return f"{place}{core}"
    if style == 1:
        return f"{rnd.choice(_SURNAMES)}{rnd.choice(_FAMILY)} {core}"
    if style == 2:
        return f"{rnd.choice(_ADJECTIVES)} {core}"
    fun = rnd.choice(recipe.name_fun)
    return fun if style == 3 else f"{fun} {place}점"


def _price_text(rnd: random.Random, recipe: SampleRecipe) -> str:
    lo, hi = recipe.menu_price
    price = round(rnd.uniform(lo, hi) / 500.0) * 500
    style = rnd.randrange(3)
    if style == 0:
        return f"{price}원"
    if style == 1:
        return f"{price:,}원"
    return f"{price:,}"


# the drawn facts the orders and the ground truth read (the region only names the restaurant)
_FACT_KEYS = ("industry_idx", "size_idx", "signup", "active_until", "activity")
_ITEM_RANGE = {0: (3, 7), 1: (5, 10), 2: (6, 14)}  # menu items drawn per size (small/medium/large)


def _draw_restaurant_facts(model: _Model, n: int, rng: np.random.Generator) -> dict:
    """Industry, size, region, sign-up, churn and activity of every restaurant (numpy draws)."""
    codes = model.industries
    share = np.array([model.share(c) for c in codes], dtype=float)
    industry_idx = rng.choice(len(codes), size=n, p=share / share.sum())
    # Guarantee every generated industry appears when there is room (small scale and up).
    if n >= 10 * len(codes):
        for i in range(len(codes)):
            if share[i] > 0 and not (industry_idx == i).any():
                industry_idx[i * 7] = i
    size_idx = rng.choice(3, size=n, p=_SIZE_SHARE)
    reg_w = np.array([w for _, w in _REGIONS])
    region_idx = rng.choice(len(_REGIONS), size=n, p=reg_w / reg_w.sum())

    end_ord = REFERENCE_END.toordinal()
    last_signup = end_ord - WINDOW_DAYS
    first_signup = end_ord - HISTORY_DAYS
    span = last_signup - first_signup
    # Growing platform: sign-up density rises linearly (1 -> 2.5) over the history.
    a, b = 1.0, 1.5
    u = rng.random(n)
    t = (-a + np.sqrt(a * a + 2 * b * u * (a + b / 2))) / b  # inverse CDF of density a + b t
    signup = first_signup + np.floor(t * (span + 1)).astype(np.int64)
    signup = np.minimum(signup, last_signup)
    # Churn: some restaurants stop ordering; never within their first 60 days.
    churn = signup + 60 + np.floor(rng.exponential(_CHURN_MEAN_DAYS, size=n)).astype(np.int64)
    activity = rng.lognormal(mean=-0.5 * 0.35**2, sigma=0.35, size=n)
    return {
        "industry_idx": industry_idx,
        "size_idx": size_idx,
        "region_idx": region_idx,
        "signup": signup,  # proleptic ordinal days
        "active_until": np.minimum(churn, end_ord),
        "activity": activity,
    }


def _choose_items(
    model: _Model, rnd: random.Random, code: str, size: int, flags: list[str]
) -> list[_MenuItem]:
    """The restaurant's menu items: popular ones of its industry, maybe mixed or with a side."""
    pool = model.items_by_industry[code]
    lo, hi = _ITEM_RANGE[size]
    k = min(len(pool), rnd.randint(lo, hi))
    chosen = _weighted_sample(rnd, pool, model.popularity[code], k)
    if rnd.random() < _P_MIXED_MENU and code != OTHER and k >= 3:
        other = rnd.choice([c for c in model.non_other if c != code])
        opool = model.items_by_industry[other]
        k_other = max(1, min(k - 1, len(opool), rnd.randint(2, 3)))
        k_other = min(k_other, len(chosen) - 1)
        chosen = chosen[: max(k_other + 1, len(chosen) - k_other)]
        chosen += _weighted_sample(rnd, opool, model.popularity[other], k_other)
        flags.append("mixed_menu")
    elif rnd.random() < 0.25 and model.recipes[code].cross_sell:
        side = rnd.choice(model.recipes[code].cross_sell)
        taken = {c.names[0] for c in chosen}
        spool = [it for it in model.items_by_industry[side] if it.names[0] not in taken]
        if spool:
            chosen.append(_weighted_sample(rnd, spool, [it.popularity for it in spool], 1)[0])
    rnd.shuffle(chosen)
    return chosen


def _item_text(
    model: _Model,
    rnd: random.Random,
    it: _MenuItem,
    english: bool,
    with_price: bool,
    with_emoji: bool,
) -> tuple[str, bool]:
    """One menu item as a restaurant would write it; True when a spelling variant was used."""
    variant_used = False
    if english and it.english and rnd.random() < 0.6:
        text = it.english
    else:
        text = it.names[0]
        if len(it.names) > 1 and rnd.random() < _P_ALTERNATIVE:
            text = rnd.choice(it.names[1:])
            variant_used |= _is_spelling_variant(it.names[0], text)
        if rnd.random() < _P_SPELLING:
            swapped = _swap_spelling(text)
            variant_used |= swapped != text
            text = swapped
    recipe = model.recipes[it.industry]
    if with_price:
        text = f"{text} {_price_text(rnd, recipe)}"
    if with_emoji and rnd.random() < 0.6:
        text = f"{recipe.emoji} {text}"
    return text, variant_used


def _menu_text(
    model: _Model,
    rnd: random.Random,
    chosen: list[_MenuItem],
    name: str,
    english: bool,
    flags: list[str],
) -> tuple[str, str]:
    """(name, menu): the items joined by '|', with the price/emoji/whitespace hard cases."""
    with_price = rnd.random() < _P_PRICE_IN_ITEMS
    with_emoji = rnd.random() < _P_EMOJI
    spaces = rnd.random() < _P_WHITESPACE
    texts = []
    variant_used = False
    for it in chosen:
        text, variant = _item_text(model, rnd, it, english, with_price, with_emoji)
        variant_used |= variant
        texts.append(text)
    if spaces:
        texts = [
            rnd.choice(("", " ", "  "))
            + t.replace(" ", rnd.choice((" ", "  ")))
            + rnd.choice(("", " ", "  "))
            for t in texts
        ]
        name = rnd.choice(("", " ")) + name + rnd.choice((" ", "  "))
        flags.append("stray_whitespace")
    if with_price:
        flags.append("price_in_items")
    if with_emoji:
        flags.append("emoji")
    if variant_used:
        flags.append("spelling_variant")
    return name, "|".join(texts)


# (model, rnd, industry, size, flags) -> (dishes cooked, dishes listed on the menu)
Chooser = Callable[
    [_Model, random.Random, str, int, list[str]], tuple[list[_MenuItem], list[_MenuItem]]
]


def _all_listed(
    model: _Model, rnd: random.Random, code: str, size: int, flags: list[str]
) -> tuple[list[_MenuItem], list[_MenuItem]]:
    """The default world: the menu lists every dish the restaurant cooks."""
    chosen = _choose_items(model, rnd, code, size, flags)
    return chosen, chosen


def _restaurant_text(
    model: _Model,
    rnd: random.Random,
    code: str,
    size: int,
    place: str,
    choose: Chooser = _all_listed,
) -> tuple[str, str, str, list[str], list[_MenuItem], list[_MenuItem]]:
    """(name, menu, description, hard-case flags, dishes cooked, dishes listed) of one restaurant."""
    flags: list[str] = []
    chosen, listed = choose(model, rnd, code, size, flags)
    english = rnd.random() < _P_ENGLISH_NAME
    if english:
        flags.append("english_name")
    name_industry = code
    if rnd.random() < _P_MISLEADING_NAME and code != OTHER:
        name_industry = rnd.choice([c for c in model.non_other if c != code])
        flags.append("misleading_name")
    name = _make_name(rnd, model.recipes[name_industry], place, english)

    if rnd.random() < _P_EMPTY_MENU or (code == OTHER and rnd.random() < 0.3):
        if name_industry != code:  # a name-only row must still be decidable from its name
            name = _make_name(rnd, model.recipes[code], place, english)
            flags.remove("misleading_name")
        flags.append("empty_menu")
        menu = ""
    else:
        name, menu = _menu_text(model, rnd, listed, name, english, flags)

    if rnd.random() < 0.4 or "misleading_name" in flags:
        description = ""
    else:
        template = rnd.choice(_DESCRIPTIONS)
        description = template.format(
            place=place, kind=model.name_ko[code], years=rnd.randint(2, 25)
        )
    return name, menu, description, flags, chosen, listed


def _make_restaurants(
    model: _Model, n: int, rng: np.random.Generator, choose: Chooser = _all_listed
) -> dict:
    """The restaurants table plus the hidden facts the orders and the ground truth need.

    The order of random draws is part of the output: the same seed must give the same sample.
    ``choose``: which dishes a restaurant cooks and lists (other worlds: sample_worlds.py).
    """
    facts = _draw_restaurant_facts(model, n, rng)
    rnd = random.Random(int(rng.integers(0, 2**63 - 1)))
    return {**{k: facts[k] for k in _FACT_KEYS}, **_restaurant_texts(model, facts, rnd, choose)}


def _restaurant_texts(
    model: _Model, facts: dict, rnd: random.Random, choose: Chooser = _all_listed
) -> dict:
    """The restaurants table, hard-case flags and menu items: one Python loop over the restaurants
    drawing from ``rnd`` only (no numpy draws), so it can run beside the order draws."""
    n = len(facts["industry_idx"])
    reg_names = [r for r, _ in _REGIONS]
    names: list[str] = []
    menus: list[str] = []
    descriptions: list[str] = []
    hard: list[str] = []
    item_rows: list[int] = []
    item_ids: list[int] = []
    item_listed: list[bool] = []
    # plain lists (a numpy scalar per row is slow) and each region's place name once
    industry_idx, size_idx = facts["industry_idx"].tolist(), facts["size_idx"].tolist()
    region_idx = facts["region_idx"].tolist()
    places = [_place_of(region) for region in reg_names]
    for r in range(n):
        code = model.industries[industry_idx[r]]
        name, menu, description, flags, chosen, listed = _restaurant_text(
            model, rnd, code, size_idx[r], places[region_idx[r]], choose
        )
        item_rows += [r] * len(chosen)
        item_ids += [it.item_id for it in chosen]
        if listed is chosen:  # the default world lists every dish it cooks
            item_listed += [bool(menu)] * len(chosen)
        else:
            on_menu = {id(it) for it in listed} if menu else set()
            item_listed += [id(it) in on_menu for it in chosen]
        names.append(name)
        menus.append(menu)
        descriptions.append(description)
        hard.append(",".join(flags))

    ids = [f"R{i + 1:06d}" for i in range(n)]
    epoch = date(1970, 1, 1).toordinal()
    table = pa.table(
        {
            "restaurant_id": ids,
            "name": names,
            "menu": menus,
            "description": descriptions,
            "region": [reg_names[i] for i in region_idx],
            "size": [SIZES[i] for i in size_idx],
            "signup_date": pa.array((facts["signup"] - epoch).astype(np.int32), pa.date32()),
        }
    )
    return {
        "table": table,
        "ids": ids,
        "hard": hard,
        "item_rows": np.asarray(item_rows, dtype=np.int64),
        "item_ids": np.asarray(item_ids, dtype=np.int64),
        "item_listed": np.asarray(item_listed, dtype=bool),  # on the (non-empty) menu
    }


# -------------------------------------------------------------------------------------------------
# Orders
# -------------------------------------------------------------------------------------------------
def _order_params(rest: dict, target_lines: float) -> dict:
    """Calibrate the weekly order rate so the expected number of lines matches the scale."""
    size_idx = rest["size_idx"]
    days = (rest["active_until"] - rest["signup"] + 1).astype(float)
    per_k = (_SIZE_FREQ[size_idx] / 7.0 * rest["activity"] * days * _SIZE_LINES[size_idx]).sum()
    onboarding = _SIZE_LINES[size_idx].sum()  # one first order per restaurant
    k = max(target_lines * _MERGE_LOSS - onboarding, 0.1 * per_k) / per_k if per_k > 0 else 1.0
    return {
        "orders_per_week_by_size": (_SIZE_FREQ * k).tolist(),
        "lines_per_order_by_size": _SIZE_LINES.tolist(),
        "qty_mult_by_size": _SIZE_QTY.tolist(),
        "noise_share": _NOISE_SHARE,
        "first_order_delay_probs": _FIRST_ORDER_DELAY.tolist(),
    }


def _sample_products(
    model: _Model,
    rest: dict,
    line_rest: np.ndarray,
    line_month: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Product index per line: the restaurant's seasonal structural mix, or its noise set."""
    n = len(rest["size_idx"])
    n_p = model.n_products
    out = np.empty(len(line_rest), dtype=np.int32)
    noise_set = rng.integers(0, n_p, size=(n, _NOISE_SET))
    is_noise = rng.random(len(line_rest)) < _NOISE_SHARE
    pick = rng.integers(0, _NOISE_SET, size=len(line_rest))
    out[is_noise] = noise_set[line_rest[is_noise], pick[is_noise]]
    u_all = rng.random(len(line_rest))

    item_rows, item_ids = rest["item_rows"], rest["item_ids"]
    n_items = len(model.items)
    # lines are sorted by restaurant, so each restaurant chunk is a contiguous slice
    bounds = np.searchsorted(line_rest, np.arange(0, n + _CHUNK_RESTAURANTS, _CHUNK_RESTAURANTS))

    def draw_chunk(c0: int) -> None:
        """One chunk's structural lines (no random draws: chunks may run in any order)."""
        c1 = min(n, c0 + _CHUNK_RESTAURANTS)
        lo, hi = bounds[c0 // _CHUNK_RESTAURANTS], bounds[c0 // _CHUNK_RESTAURANTS + 1]
        if hi <= lo:
            return
        sel_items = (item_rows >= c0) & (item_rows < c1)
        counts = np.zeros((c1 - c0, n_items))
        np.add.at(counts, (item_rows[sel_items] - c0, item_ids[sel_items]), 1.0)
        weights = model.structural_weights(rest["industry_idx"][c0:c1], counts)
        rl = line_rest[lo:hi] - c0
        months = line_month[lo:hi]
        structural = ~is_noise[lo:hi]
        u = u_all[lo:hi]
        chunk_out = out[lo:hi]
        sparse = SparseRows(weights)
        for m in np.unique(months[structural]):
            sel = structural & (months == m)
            rows = np.unique(rl[sel])  # only the restaurants with a line in this month
            vals, cols = sparse.rows(rows)
            # offsets: each row's index in the chunk, as when every row of the chunk was searched
            chunk_out[sel] = sparse.draw(
                vals * model.season[m][cols],
                cols,
                rows,
                np.searchsorted(rows, rl[sel]),
                rl[sel] + u[sel],
            )
        out[lo:hi] = chunk_out

    # numpy releases the GIL in the large operations: two threads keep both cores busy
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        list(pool.map(draw_chunk, range(0, n, _CHUNK_RESTAURANTS)))
    return out


class SparseRows:
    """Each row's non-zero weights, left-aligned and padded with zeros, for inverse-CDF draws.

    Why: a restaurant buys a few dozen of the ~400 products, and the cumulative sums over the full
    rows were most of a large sample's generation. Leaving out zero weights keeps every cumulative
    sum (x + 0.0 is x) and every drawn product (a zero weight is never the first entry above the
    draw); searching only the rows that have draws, each at its own offset, finds what searching
    every row found (a row's values lie between its offset and the next). So the sample stays
    byte-identical (tests/test_sample_data.py keeps the full-width code as the oracle). If a row
    has no non-zero weight (a world with staple_weight 0), every row keeps its full width.
    """

    def __init__(self, weights: np.ndarray) -> None:
        self.n_cols = weights.shape[1]
        r, c = np.nonzero(weights)
        self.nnz = np.bincount(r, minlength=len(weights))
        if len(weights) and not self.nnz.all():
            r, c = np.divmod(np.arange(weights.size), self.n_cols)
            self.nnz = np.full(len(weights), self.n_cols)
        width = int(self.nnz.max()) if len(weights) else 0
        pos = np.arange(len(r)) - np.repeat(np.cumsum(self.nnz) - self.nnz, self.nnz)
        self.cols = np.full((len(weights), width), self.n_cols - 1, dtype=np.int64)
        self.cols[r, pos] = c
        self.vals = np.zeros((len(weights), width))
        self.vals[r, pos] = weights[r, c]

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(weights, product indices) of ``rows``, as wide as the widest of them."""
        width = int(self.nnz[rows].max()) if len(rows) else 0
        return self.vals[rows, :width], self.cols[rows, :width]

    def draw(
        self,
        w: np.ndarray,
        cols: np.ndarray,
        offsets: np.ndarray,
        line_row: np.ndarray,
        q: np.ndarray,
    ) -> np.ndarray:
        """Column drawn for each line: the first whose normalised cumulative weight plus the row's
        offset exceeds ``q`` (offset + uniform), searched in the rows laid end to end as the full
        rows were; past the end of its row (rounding), the last column."""
        cum = np.cumsum(w, axis=1)
        cum /= cum[:, -1:]
        width = cum.shape[1]
        flat = (cum + offsets.astype(float)[:, None]).ravel()
        k = np.searchsorted(flat, q, side="right") - line_row * width
        inside = k < width
        out = np.full(len(q), self.n_cols - 1, dtype=np.int64)
        out[inside] = cols[line_row[inside], k[inside]]
        return out


def _draw_order_lines(
    model: _Model, rest: dict, params: dict, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Draw every order line: the arguments of `_write_order_lines` after the restaurant ids and
    the products. Longer than 80 lines on purpose: the random draws must stay in this exact order
    for a seed to keep producing byte-identical files (tested by hash), so the vectorised draws
    are not scattered over helpers. Only the products need the restaurants' menus (``rest`` may
    still be drawing them, see `_PendingRestaurants`)."""
    n = len(rest["size_idx"])
    size_idx = rest["size_idx"]
    signup, until = rest["signup"], rest["active_until"]
    days = until - signup + 1
    rate = np.asarray(params["orders_per_week_by_size"])[size_idx] / 7.0 * rest["activity"]
    n_orders = rng.poisson(rate * days)
    stream_rest = np.repeat(np.arange(n, dtype=np.int32), n_orders)
    offset = np.floor(rng.random(len(stream_rest)) * days[stream_rest]).astype(np.int64)
    stream_day = signup[stream_rest] + offset
    # every new restaurant places an onboarding order within its first week
    first_day = signup + rng.choice(len(_FIRST_ORDER_DELAY), size=n, p=_FIRST_ORDER_DELAY)
    order_rest, order_day = group_by_restaurant(n_orders, first_day, stream_day)
    del stream_rest, stream_day
    hour = rng.choice(24, size=len(order_rest), p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    seconds = hour * 3600 + rng.integers(0, 3600, size=len(order_rest))
    epoch = date(1970, 1, 1).toordinal()
    order_ts = (order_day - epoch) * 86400 + seconds

    # order ids follow time, like a real order system
    order_rank = np.empty(len(order_rest), dtype=np.int64)
    order_rank[np.lexsort((order_rest, order_ts))] = np.arange(len(order_rest))

    n_lines = 1 + rng.poisson(_SIZE_LINES[size_idx[order_rest]] - 1.0)
    line_order = np.repeat(np.arange(len(order_rest), dtype=np.int64), n_lines)
    line_rest = order_rest[line_order]
    line_month = (
        (order_day[line_order] - epoch)
        .astype("datetime64[D]")
        .astype("datetime64[M]")
        .astype(np.int64)
        % 12
    ).astype(np.int8)
    product = _sample_products(model, rest, line_rest, line_month, rng)
    del line_month
    mu = np.maximum(1.0, model.base_qty[product] * _SIZE_QTY[size_idx[line_rest]])
    qty = 1 + rng.poisson(mu - 1.0)
    del mu

    # sort by (order rank, product) and merge duplicate products within an order
    line_rank = order_rank[line_order]
    order_sort = rank_then_product(order_rank, n_lines, product)
    del n_lines
    line_rank, product, qty = line_rank[order_sort], product[order_sort], qty[order_sort]
    line_order = line_order[order_sort]
    del order_sort
    first = np.ones(len(line_rank), dtype=bool)
    first[1:] = (line_rank[1:] != line_rank[:-1]) | (product[1:] != product[:-1])
    starts = np.flatnonzero(first)
    qty = np.add.reduceat(qty, starts) if len(starts) else qty[:0]
    line_rank, product, line_order = line_rank[starts], product[starts], line_order[starts]
    del first, starts
    return order_rest, order_ts, line_order, line_rank, product, qty


def group_by_restaurant(
    n_orders: np.ndarray, first_day: np.ndarray, stream_day: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(restaurant, day) of every order, grouped by restaurant: each restaurant's onboarding order,
    then its stream orders in drawn order. What a stable argsort of the onboarding orders followed
    by the stream orders gives (the stream is already grouped by restaurant), without the sort."""
    n = len(n_orders)
    order_rest = np.repeat(np.arange(n, dtype=np.int32), n_orders + 1)
    first = np.zeros(len(order_rest), dtype=bool)
    first[np.cumsum(n_orders + 1) - (n_orders + 1)] = True
    order_day = np.empty(len(order_rest), dtype=np.result_type(first_day, stream_day))
    order_day[first] = first_day
    order_day[~first] = stream_day
    return order_rest, order_day


def rank_then_product(
    order_rank: np.ndarray, n_lines: np.ndarray, product: np.ndarray
) -> np.ndarray:
    """``np.lexsort((product, order_rank[line_order]))`` for lines grouped by order (order i has
    ``n_lines[i]`` consecutive lines): the same stable permutation, 4-5x faster on 10M lines, since
    the orders are put in rank order as blocks and only the few lines within each are sorted."""
    by_rank = np.empty_like(order_rank)
    by_rank[order_rank] = np.arange(len(order_rank))
    counts = n_lines[by_rank]
    first_line = (np.cumsum(n_lines) - n_lines)[by_rank]
    lines = np.repeat(first_line - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
    bound = int(product.max()) + 1 if len(product) else 1
    key = np.repeat(np.arange(len(by_rank), dtype=np.int64) * bound, counts) + product[lines]
    return lines[np.argsort(key, kind="stable")]


def _write_order_lines(
    path: Path,
    fmt: str,
    restaurant_ids: Sequence[str],
    products_tbl: pa.Table,
    order_rest: np.ndarray,
    order_ts: np.ndarray,
    line_order: np.ndarray,
    line_rank: np.ndarray,
    product: np.ndarray,
    qty: np.ndarray,
) -> int:
    """Write the drawn order lines in chunks (bounded memory at large scales); no random draws."""
    rid_arr = pa.array(restaurant_ids, pa.string())
    pid_arr = products_tbl.column("product_id").combine_chunks()
    schema = pa.schema(
        [
            ("order_id", pa.string()),
            ("restaurant_id", pa.string()),
            ("product_id", pa.string()),
            ("quantity", pa.int64()),
            ("ordered_at", pa.timestamp("us")),
        ]
    )
    total = len(line_rank)

    def batch(s: int) -> pa.Table:
        e = min(total, s + _WRITE_CHUNK_LINES)
        lo_ord = line_order[s:e]
        nums = pc.cast(pa.array(line_rank[s:e] + 1), pa.string())
        order_id = pc.binary_join_element_wise("O", pc.utf8_lpad(nums, 9, "0"), "")
        ts = pa.array(order_ts[lo_ord] * 1_000_000, pa.timestamp("us"))
        return pa.table(
            {
                "order_id": order_id,
                "restaurant_id": rid_arr.take(pa.array(order_rest[lo_ord])),
                "product_id": pid_arr.take(pa.array(product[s:e])),
                "quantity": pa.array(qty[s:e].astype(np.int64)),
                "ordered_at": ts,
            },
            schema=schema,
        )

    writer = None
    starts = range(0, max(total, 1), _WRITE_CHUNK_LINES)
    # the next chunk is built while this one is written (both without the GIL), in file order
    with ThreadPoolExecutor(max_workers=1) as builder:
        try:
            if fmt == "parquet":
                writer = pq.ParquetWriter(path, schema, compression="zstd")
            else:
                path.unlink(missing_ok=True)
            upcoming = builder.submit(batch, starts[0])
            for i, s in enumerate(starts):
                chunk = upcoming.result()
                if i + 1 < len(starts):
                    upcoming = builder.submit(batch, starts[i + 1])
                if writer is not None:
                    writer.write_table(chunk)
                else:
                    _append_csv(chunk, path, header=(s == 0))
        finally:
            if writer is not None:
                writer.close()
    return total


# -------------------------------------------------------------------------------------------------
# Writing
# -------------------------------------------------------------------------------------------------
def _append_csv(table: pa.Table, path: Path, header: bool) -> None:
    """Append order lines; their values (ids, integers, timestamps) never need quoting."""
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")
        cols.append(col)
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "ab") as fh:
        if header:
            fh.write((",".join(table.column_names) + "\n").encode("utf-8"))
        pacsv.write_csv(pa.table(cols, names=table.column_names), fh, write_options=opts)


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
    else:
        # free text (names, menus with "7,000원") needs RFC 4180 minimal quoting
        table.to_pandas().to_csv(path, index=False, encoding="utf-8", lineterminator="\n")


def _write_ground_truth(
    model: _Model, rest: dict, params: dict, gt_dir: Path, *, seed: int, scale: str, n_lines: int
) -> None:
    """The answers the pipeline must not see: each restaurant's truth, the catalog's weights and
    the generation parameters (oracle_scores and the benchmarks read them)."""
    _write_restaurant_truth(model, rest, gt_dir)
    _write_catalog_truth(model, gt_dir)
    meta = dict(params)
    meta.update(
        seed=seed,
        scale=scale,
        n_restaurants=len(rest["ids"]),
        n_order_lines=int(n_lines),
        reference_end=REFERENCE_END.isoformat(),
        window_days=WINDOW_DAYS,
        industries=list(model.industries),
        sizes=list(SIZES),
        season_matrix=model.season.tolist(),
    )
    text = json.dumps(meta, ensure_ascii=False, indent=1)
    (gt_dir / "params.json").write_text(text, encoding="utf-8")


def _write_restaurant_truth(model: _Model, rest: dict, gt_dir: Path) -> None:
    """restaurant_truth (industry, size, activity...) and restaurant_items (menu items drawn)."""
    epoch = date(1970, 1, 1).toordinal()
    codes = model.industries
    items_per_r = np.bincount(rest["item_rows"], minlength=len(rest["ids"]))
    pq.write_table(
        pa.table(
            {
                "restaurant_id": rest["ids"],
                "industry": [codes[i] for i in rest["industry_idx"]],
                "size": [SIZES[i] for i in rest["size_idx"]],
                "signup_date": pa.array((rest["signup"] - epoch).astype(np.int32), pa.date32()),
                "active_until": pa.array(
                    (rest["active_until"] - epoch).astype(np.int32), pa.date32()
                ),
                "activity": rest["activity"],
                "n_menu_items": items_per_r.astype(np.int64),
                "hard_cases": rest["hard"],
            }
        ),
        gt_dir / "restaurant_truth.parquet",
    )
    ids = np.asarray(rest["ids"], dtype=object)
    pq.write_table(
        pa.table({"restaurant_id": ids[rest["item_rows"]].tolist(), "item_id": rest["item_ids"]}),
        gt_dir / "restaurant_items.parquet",
    )


def _write_catalog_truth(model: _Model, gt_dir: Path) -> None:
    """The catalog's hidden side: base quantities and seasons, industry and menu-item weights."""
    codes = model.industries
    prod_ids = [f"P{i + 1:04d}" for i in range(model.n_products)]
    pq.write_table(
        pa.table(
            {
                "product_id": prod_ids,
                "name": [p.name for p in model.products],
                "base_qty": model.base_qty,
                "season": [p.season for p in model.products],
            }
        ),
        gt_dir / "product_truth.parquet",
    )
    ii, pp = np.nonzero(model.staples)
    pq.write_table(
        pa.table(
            {
                "industry": [codes[i] for i in ii],
                "product_id": [prod_ids[p] for p in pp],
                "weight": model.staples[ii, pp],
            }
        ),
        gt_dir / "industry_weights.parquet",
    )
    it, pp = np.nonzero(model.item_matrix)
    pq.write_table(
        pa.table(
            {
                "item_id": it.astype(np.int64),
                "product_id": [prod_ids[p] for p in pp],
                "weight": model.item_matrix[it, pp],
            }
        ),
        gt_dir / "item_weights.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "item_id": [i.item_id for i in model.items],
                "industry": [i.industry for i in model.items],
                "name": [i.names[0] for i in model.items],
            }
        ),
        gt_dir / "menu_items.parquet",
    )


def _progress_bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc)


def _tick(bar, label: str) -> None:
    if bar is not None:
        bar.set_postfix_str(label)
        bar.update(1)


__all__ = ["REFERENCE_END", "SCALES", "SampleFiles", "generate_sample", "oracle_scores"]
