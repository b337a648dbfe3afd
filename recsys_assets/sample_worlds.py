"""Other generating mechanisms ("worlds") for the sample generator.

Why: a ranker developed against one data-generating process can learn that process instead of the
problem (issue 13: a +10 % gain on the project's generator shrank to noise on data from a recipe
model). Each world keeps the pipeline's input schema and the taxonomy (industries, dishes and their
ingredients, staples) but changes how purchases follow from them: how much the industry label
decides the basket, whether the menu lists every dish, mixed-industry kitchens, substitute brands
with per-restaurant loyalty, onboarding bursts, weekly and seasonal rhythm, churn.

The knobs of each world are data: ``recsys_assets/data/worlds.yaml``; substitute brand names:
``recsys_assets/data/brands.csv``. The ``default`` world is ``sample_data.py``'s own path, which
this module never changes. Besides the files, the ground truth lets an evaluation score two
upper references (``expected_scores``): the full oracle (knows every hidden habit) and the
menu-visible ceiling (knows the true industry and the listed dishes, not the realized orders).
"""

from __future__ import annotations

import functools
import json
import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_assets import sample_data as sd
from recsys_assets.datafiles import (
    DATA_DIR,
    DataFileError,
    LocatedDict,
    load_yaml,
    read_csv_rows,
)
from recsys_assets.taxonomy import OTHER

WORLDS_PATH = DATA_DIR / "worlds.yaml"
BRANDS_PATH = DATA_DIR / "brands.csv"
DEFAULT_WORLD = "default"
RANDOM_WORLD = "random"
ANY_CATEGORY = "*"


@dataclass(frozen=True)
class World:
    """One generating mechanism; the field defaults are the default world's behaviour."""

    name: str
    description: str = ""
    tuned_on: bool = False  # the project's defaults were chosen on this world
    staple_weight: float = 1.0
    item_weight: float = 1.0
    listed_full_share: float = 1.0
    listed_fraction: tuple[float, float] = (1.0, 1.0)
    mixed_menu: float = 0.0
    mixed_share: float = 0.3
    substitute_share: float = 0.0
    substitute_brands: tuple[int, int] = (1, 1)
    substitute_zipf: float = 1.0
    loyalty: float = 0.0
    onboarding_rate: float = 1.0
    onboarding_boost: tuple[tuple[str, float], ...] = ()
    weekly: tuple[float, ...] = (1.0,) * 7
    season_amplitude: float = 1.0
    churn_min_days: int = 60
    churn_mean_days: float = 200.0
    noise_share: float = 0.12
    menu_affix_share: float = 0.0
    seed: int | None = field(default=None, compare=False)  # the seed a random world was drawn with

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_WORLD

    def knobs(self) -> dict[str, Any]:
        """JSON-ready knobs (the ground truth's params.json and the benchmark record them)."""
        d = asdict(self)
        d["onboarding_boost"] = dict(self.onboarding_boost)
        return d


# --------------------------------------------------------------------------------------------
# worlds.yaml
# --------------------------------------------------------------------------------------------
_SHARES = ("listed_full_share", "mixed_menu", "mixed_share", "loyalty", "noise_share")
_POSITIVE = ("staple_weight", "item_weight", "season_amplitude")
_WORLD_KEYS = {
    "description",
    "tuned_on",
    *_SHARES,
    *_POSITIVE,
    "listed_fraction",
    "substitutes",
    "onboarding",
    "weekly",
    "churn",
    "menu_affix_share",
}


def _num(where: str, value: Any, low: float, high: float = float("inf")) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise DataFileError(f"{where} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _pair(where: str, value: Any, low: float, high: float) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise DataFileError(f"{where} must be [low, high], got {value!r}")
    a, b = (_num(where, v, low, high) for v in value)
    if a > b:
        raise DataFileError(f"{where}: low {a} is above high {b}")
    return a, b


def _mapping(where: str, value: Any, keys: set[str]) -> dict:
    if not isinstance(value, dict) or set(value) != keys:
        raise DataFileError(f"{where} must have exactly the keys {sorted(keys)}, got {value!r}")
    return value


def _parse_world(path: Path, name: str, spec: Any, line: int) -> World:
    """One `worlds:` entry; DataFileError names the file and line of the bad value."""
    if not isinstance(spec, dict):
        raise DataFileError(f"{path}:{line}: world {name!r} must be a mapping")
    at = spec.line_of if hasattr(spec, "line_of") else (lambda _k: line)
    unknown = set(spec) - _WORLD_KEYS
    if unknown:
        raise DataFileError(f"{path}:{line}: world {name!r}: unknown keys {sorted(unknown)}")
    if name == DEFAULT_WORLD:
        if set(spec) - {"description", "tuned_on"}:
            raise DataFileError(f"{path}:{line}: the default world takes no knobs")
        return World(name, str(spec.get("description", "")), bool(spec.get("tuned_on", False)))
    missing = _WORLD_KEYS - {"tuned_on", "menu_affix_share"} - set(spec)
    if missing:
        raise DataFileError(f"{path}:{line}: world {name!r}: missing keys {sorted(missing)}")

    def w(key: str) -> str:
        return f"{path}:{at(key)}: world {name!r}: {key}"

    subs = _mapping(w("substitutes"), spec["substitutes"], {"share_of_products", "brands", "zipf"})
    onb = _mapping(w("onboarding"), spec["onboarding"], {"rate", "boost"})
    churn = _mapping(w("churn"), spec["churn"], {"min_days", "mean_days"})
    weekly = spec["weekly"]
    if not isinstance(weekly, list) or len(weekly) != 7:
        raise DataFileError(f"{w('weekly')} must list 7 weights (Monday..Sunday)")
    boost = onb["boost"]
    if not isinstance(boost, dict):
        raise DataFileError(f"{w('onboarding')}: boost must be a mapping category: multiplier")
    brands = _pair(w("substitutes"), subs["brands"], 1, 20)
    plain: dict[str, Any] = {k: _num(w(k), spec[k], 0.0, 1.0) for k in _SHARES}
    plain.update({k: _num(w(k), spec[k], 0.0, 100.0) for k in _POSITIVE})
    plain["menu_affix_share"] = _num(w("menu_affix_share"), spec.get("menu_affix_share", 0), 0, 1)
    return World(
        name=name,
        description=str(spec["description"]),
        tuned_on=bool(spec.get("tuned_on", False)),
        **plain,
        listed_fraction=_pair(w("listed_fraction"), spec["listed_fraction"], 0.0, 1.0),
        substitute_share=_num(w("substitutes"), subs["share_of_products"], 0.0, 1.0),
        substitute_brands=(int(brands[0]), int(brands[1])),
        substitute_zipf=_num(w("substitutes"), subs["zipf"], 0.0, 10.0),
        onboarding_rate=_num(w("onboarding"), onb["rate"], 1.0, 10.0),
        onboarding_boost=tuple(
            (str(c), _num(w("onboarding"), v, 0.0, 100.0)) for c, v in boost.items()
        ),
        weekly=tuple(_num(w("weekly"), v, 0.001, 100.0) for v in weekly),
        churn_min_days=int(_num(w("churn"), churn["min_days"], 30, 10_000)),
        churn_mean_days=_num(w("churn"), churn["mean_days"], 1.0, 10_000.0),
    )


_TOP_KEYS = {"worlds", "random", "menu_affixes"}


@functools.cache
def load_worlds(path: Path = WORLDS_PATH) -> tuple[dict[str, World], dict]:
    """(named worlds, the `random:` ranges), validated once per process."""
    doc = load_yaml(path)
    if not isinstance(doc, LocatedDict) or set(doc) != _TOP_KEYS:
        raise DataFileError(f"{path}:1: top-level keys must be exactly {sorted(_TOP_KEYS)}")
    affixes = doc["menu_affixes"]
    if not isinstance(affixes, dict) or set(affixes) != {"prefix", "suffix"}:
        raise DataFileError(
            f"{path}:{doc.line_of('menu_affixes')}: menu_affixes needs exactly prefix and suffix"
        )
    worlds = doc["worlds"]
    if not isinstance(worlds, LocatedDict) or DEFAULT_WORLD not in worlds or RANDOM_WORLD in worlds:
        raise DataFileError(
            f"{path}:{doc.line_of('worlds')}: 'worlds' must define {DEFAULT_WORLD!r} "
            f"and must not define {RANDOM_WORLD!r} (a reserved name)"
        )
    parsed = {n: _parse_world(path, str(n), s, worlds.line_of(n)) for n, s in worlds.items()}
    return parsed, {**doc["random"], "menu_affixes": {k: list(v) for k, v in affixes.items()}}


def world_names() -> list[str]:
    """Every value `--world` accepts."""
    return [*load_worlds()[0], RANDOM_WORLD]


def resolve_world(name: str, seed: int) -> World:
    """The named world, or for ``random`` the world drawn from ``seed`` (same seed, same world)."""
    key = (name or DEFAULT_WORLD).strip().lower()
    worlds, ranges = load_worlds()
    if key == RANDOM_WORLD:
        return _random_world(ranges, seed)
    if key not in worlds:
        raise ValueError(f"unknown world {name!r}: choose one of {', '.join(world_names())}")
    return worlds[key]


def _random_world(r: dict, seed: int) -> World:
    """Every knob uniform in its `random:` range, from a generator seeded by ``seed`` only."""
    rng = np.random.default_rng([int(seed), zlib.crc32(RANDOM_WORLD.encode())])

    def u(key: str) -> float:
        lo, hi = r[key]
        return float(rng.uniform(lo, hi))

    def i(key: str) -> int:
        lo, hi = r[key]
        return int(rng.integers(int(lo), int(hi) + 1))

    brands_lo = i("substitutes_brands_low")
    return World(
        name=RANDOM_WORLD,
        description=f"knobs drawn from worlds.yaml's random ranges with seed {seed}",
        staple_weight=u("staple_weight"),
        item_weight=u("item_weight"),
        listed_full_share=u("listed_full_share"),
        listed_fraction=(u("listed_fraction_low"), u("listed_fraction_high")),
        mixed_menu=u("mixed_menu"),
        mixed_share=u("mixed_share"),
        substitute_share=u("substitutes_share_of_products"),
        substitute_brands=(brands_lo, max(brands_lo, i("substitutes_brands_high"))),
        substitute_zipf=u("substitutes_zipf"),
        loyalty=u("loyalty"),
        onboarding_rate=u("onboarding_rate"),
        onboarding_boost=tuple(
            (str(c), u("onboarding_boost")) for c in r["onboarding_boost_categories"]
        ),
        weekly=tuple(u("weekly") for _ in range(7)),
        season_amplitude=u("season_amplitude"),
        churn_min_days=i("churn_min_days"),
        churn_mean_days=u("churn_mean_days"),
        noise_share=u("noise_share"),
        menu_affix_share=u("menu_affix_share"),
        seed=int(seed),
    )


# --------------------------------------------------------------------------------------------
# Catalog with substitute brands
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Catalog:
    """Sellable products (SKUs); each is a brand of one base product of catalog.csv."""

    names: list[str]
    categories: list[str]
    prices: list[int]
    base: np.ndarray  # SKU -> base product index
    share: np.ndarray  # SKU's market share among its base product's brands (sums to 1 per base)
    cum: np.ndarray  # base index + cumulative share: searchsorted(cum, base + u) draws a SKU

    def choose(self, base: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The SKU with market-share probability for each (base product, uniform draw)."""
        idx = np.searchsorted(self.cum, base + u, side="right")
        return np.minimum(idx, len(self.base) - 1)


@functools.cache
def _brands(path: Path = BRANDS_PATH) -> dict[str, tuple[str, ...]]:
    """category -> brand names (``*`` rows apply to every category)."""
    out: dict[str, list[str]] = {}
    for _line, row in read_csv_rows(path, ("category", "brand")):
        out.setdefault(row["category"], []).append(row["brand"])
    if not out:
        raise DataFileError(f"{path}:1: no brands")
    return {c: tuple(b) for c, b in out.items()}


def expand_catalog(model: sd._Model, world: World, rng: np.random.Generator) -> Catalog:
    """Give a share of the products 2+ brand SKUs (the plain product stays one of them)."""
    brands = _brands()
    names, cats, prices, base, share = [], [], [], [], []
    lo, hi = world.substitute_brands
    for j, p in enumerate(model.products):
        n, picked = 1, []
        if rng.random() < world.substitute_share:
            pool = list(brands.get(p.category, ())) + list(brands.get(ANY_CATEGORY, ()))
            n = min(int(rng.integers(lo, hi + 1)), 1 + len(pool))
            picked = [pool[k] for k in rng.permutation(len(pool))[: n - 1]]
        w = 1.0 / np.arange(1, n + 1) ** world.substitute_zipf
        w = rng.permutation(w / w.sum())  # the plain product is not always the market leader
        for k in range(n):
            names.append(p.name if k == 0 else f"{picked[k - 1]} {p.name}")
            cats.append(p.category)
            jitter = 1.0 if k == 0 else 1.0 + rng.normal(0.0, 0.08)
            prices.append(max(100, round(p.price * jitter / 10.0) * 10))
            base.append(j)
            share.append(float(w[k]))
    b, s = np.asarray(base, dtype=np.int64), np.asarray(share)
    return Catalog(names, cats, prices, b, s, _cum(b, s))


def _hash_uniform(key: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) fixed by (key, a, b): each restaurant's own brand of each product,
    reproducible by the oracle without storing a restaurant x product table (splitmix64)."""
    with np.errstate(over="ignore"):
        x = (
            np.uint64(key & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
            + a.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
            + b.astype(np.uint64) * np.uint64(0x94D049BB133111EB)
        )
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def own_brand(catalog: Catalog, key: int, rest: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The SKU restaurant ``rest`` is loyal to for base product ``base`` (by market share)."""
    return catalog.choose(base, _hash_uniform(key, rest, base))


# --------------------------------------------------------------------------------------------
# Restaurants: which dishes a restaurant cooks, which ones its menu lists
# --------------------------------------------------------------------------------------------
def _chooser(world: World, wrnd: random.Random) -> sd.Chooser:
    def choose(model, rnd, code, size, flags):
        chosen = sd._choose_items(model, rnd, code, size, flags)
        if code != OTHER and "mixed_menu" not in flags and wrnd.random() < world.mixed_menu:
            other = wrnd.choice([c for c in model.non_other if c != code])
            pool = model.items_by_industry[other]
            k_other = min(len(pool), max(1, round(len(chosen) * world.mixed_share)))
            keep = max(1, len(chosen) - k_other)
            extra = sd._weighted_sample(wrnd, pool, [it.popularity for it in pool], k_other)
            chosen = chosen[:keep] + extra
            wrnd.shuffle(chosen)
            flags.append("mixed_menu")
        if wrnd.random() < world.listed_full_share or len(chosen) <= 1:
            return chosen, chosen
        lo, hi = world.listed_fraction
        m = max(1, min(len(chosen), round(wrnd.uniform(lo, hi) * len(chosen))))
        keep_ix = set(wrnd.sample(range(len(chosen)), m))
        flags.append("partial_menu")
        return chosen, [it for i, it in enumerate(chosen) if i in keep_ix]

    return choose


_FIRST_WORD = re.compile(r"[가-힣]")
_LAST_WORD = re.compile(r"([가-힣])(?!.*[가-힣])")


def _house_menus(menus: list[str], share: float, wrnd: random.Random) -> list[str]:
    """Glue a house prefix or suffix (worlds.yaml `menu_affixes`) to a share of the listed dishes:
    the dishes stay the same, their text no longer matches the shared dish vocabulary."""
    if share <= 0:
        return menus
    affixes = load_worlds()[1]["menu_affixes"]
    out = []
    for menu in menus:
        items = menu.split("|") if menu else []
        for i, item in enumerate(items):
            if wrnd.random() >= share:
                continue
            if wrnd.random() < 0.5:
                at = _FIRST_WORD.search(item)
                cut, affix = (at.start() if at else None), wrnd.choice(affixes["prefix"])
            else:
                at = _LAST_WORD.search(item)
                cut, affix = (at.end() if at else None), wrnd.choice(affixes["suffix"])
            if cut is not None:  # items without Korean (English names) stay as they are
                items[i] = item[:cut] + affix + item[cut:]
        out.append("|".join(items))
    return out


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------
def _weekday_shift(day: np.ndarray, world: World, rng: np.random.Generator) -> np.ndarray:
    """Move each order to a weekday of the same week drawn from the weekly rhythm."""
    w = np.asarray(world.weekly, dtype=float)
    dow = (day - 1) % 7  # proleptic ordinal 1 (0001-01-01) is a Monday
    return day - dow + rng.choice(7, size=len(day), p=w / w.sum())


def _order_stream(
    world: World, rest: dict, target_lines: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(restaurant, day) of every order: onboarding order, regular stream, onboarding burst."""
    n = len(rest["ids"])
    size_idx = rest["size_idx"]
    signup, until = rest["signup"], rest["active_until"]
    days = until - signup + 1
    early = np.minimum(days, sd.WINDOW_DAYS)
    base = sd._SIZE_FREQ[size_idx] / 7.0 * rest["activity"]
    per_k = (base * (days + (world.onboarding_rate - 1.0) * early) * sd._SIZE_LINES[size_idx]).sum()
    want = target_lines * sd._MERGE_LOSS - sd._SIZE_LINES[size_idx].sum()
    k = max(want, 0.1 * per_k) / per_k
    rate = base * k
    n_reg = rng.poisson(rate * days)
    n_burst = rng.poisson(rate * (world.onboarding_rate - 1.0) * early)
    reg = np.repeat(np.arange(n), n_reg)
    burst = np.repeat(np.arange(n), n_burst)
    reg_day = signup[reg] + np.floor(rng.random(len(reg)) * days[reg]).astype(np.int64)
    burst_day = signup[burst] + np.floor(rng.random(len(burst)) * early[burst]).astype(np.int64)
    stream_rest = np.concatenate([reg, burst]).astype(np.int32)
    stream_day = _weekday_shift(np.concatenate([reg_day, burst_day]), world, rng)
    stream_day = np.clip(stream_day, signup[stream_rest], until[stream_rest])
    first = signup + rng.choice(len(sd._FIRST_ORDER_DELAY), size=n, p=sd._FIRST_ORDER_DELAY)
    order_rest = np.concatenate([np.arange(n, dtype=np.int32), stream_rest])
    order_day = np.concatenate([first, stream_day])
    by_rest = np.argsort(order_rest, kind="stable")
    params = {
        "orders_per_week_by_size": (sd._SIZE_FREQ * k).tolist(),
        "lines_per_order_by_size": sd._SIZE_LINES.tolist(),
        "qty_mult_by_size": sd._SIZE_QTY.tolist(),
        "noise_share": world.noise_share,
        "first_order_delay_probs": sd._FIRST_ORDER_DELAY.tolist(),
        "onboarding_rate": world.onboarding_rate,
    }
    return order_rest[by_rest], order_day[by_rest], params


def _boost_vector(model: sd._Model, world: World) -> np.ndarray:
    boost = dict(world.onboarding_boost)
    return np.array([boost.get(p.category, 1.0) for p in model.products])


def _season(model: sd._Model, world: World) -> np.ndarray:
    return np.maximum(0.05, 1.0 + world.season_amplitude * (model.season - 1.0))


def _sample_base_products(
    model: sd._Model,
    world: World,
    rest: dict,
    line_rest: np.ndarray,
    line_month: np.ndarray,
    line_early: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Base product per line: every cooked dish (listed or not) + weighted staples, the seasonal
    and onboarding mix of the line's month; or one of the restaurant's idiosyncratic products.

    Lines are grouped by restaurant, so restaurants are handled in chunks (bounded memory)."""
    n, n_p = len(rest["ids"]), model.n_products
    out = np.empty(len(line_rest), dtype=np.int64)
    noise_set = rng.integers(0, n_p, size=(n, sd._NOISE_SET))
    is_noise = rng.random(len(line_rest)) < world.noise_share
    pick = rng.integers(0, sd._NOISE_SET, size=len(line_rest))
    out[is_noise] = noise_set[line_rest[is_noise], pick[is_noise]]
    u = rng.random(len(line_rest))
    chunk = sd._CHUNK_RESTAURANTS
    bounds = np.searchsorted(line_rest, np.arange(0, n + chunk, chunk))
    item_rows, item_ids = rest["item_rows"], rest["item_ids"]
    for k, c0 in enumerate(range(0, n, chunk)):
        c1, lo, hi = min(n, c0 + chunk), bounds[k], bounds[k + 1]
        sel_items = (item_rows >= c0) & (item_rows < c1)
        counts = np.zeros((c1 - c0, len(model.items)))
        np.add.at(counts, (item_rows[sel_items] - c0, item_ids[sel_items]), 1.0)
        weights = world.staple_weight * model.staples[rest["industry_idx"][c0:c1]]
        weights += world.item_weight * (counts @ model.item_matrix)
        lines = slice(lo, hi)
        out[lines] = _draw_lines(
            model,
            world,
            weights,
            line_rest[lines] - c0,
            line_month[lines],
            line_early[lines],
            u[lines],
            ~is_noise[lines],
            out[lines],
        )
    return out


def _draw_lines(
    model: sd._Model,
    world: World,
    weights: np.ndarray,
    rl: np.ndarray,
    months: np.ndarray,
    early: np.ndarray,
    u: np.ndarray,
    structural: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """Inverse-CDF draws of one chunk's structural lines, per (month, onboarding) mix."""
    season, boost = _season(model, world), _boost_vector(model, world)
    sparse = sd.SparseRows(weights)
    out = out.copy()
    for m in np.unique(months[structural]):
        for first_month in (False, True):
            sel = structural & (months == m) & (early == first_month)
            if not sel.any():
                continue
            rows = np.unique(rl[sel])
            vals, cols = sparse.rows(rows)
            w = vals * season[m][cols]
            if first_month:
                w = w * boost[cols]
            local = np.searchsorted(rows, rl[sel])
            out[sel] = sparse.draw(w, cols, np.arange(len(rows)), local, local + u[sel])
    return out


def _write_orders(
    model: sd._Model,
    world: World,
    catalog: Catalog,
    rest: dict,
    target_lines: float,
    rng: np.random.Generator,
    path: Path,
    fmt: str,
    products_tbl: pa.Table,
    brand_key: int,
) -> tuple[int, dict]:
    """Draw and write every order line; returns (lines written, order parameters)."""
    order_rest, order_day, params = _order_stream(world, rest, target_lines, rng)
    hour = rng.choice(24, size=len(order_rest), p=sd._HOUR_WEIGHTS / sd._HOUR_WEIGHTS.sum())
    epoch = date(1970, 1, 1).toordinal()
    order_ts = (order_day - epoch) * 86400 + hour * 3600 + rng.integers(0, 3600, len(order_rest))
    order_rank = np.empty(len(order_rest), dtype=np.int64)
    order_rank[np.lexsort((order_rest, order_ts))] = np.arange(len(order_rest))
    size_idx = rest["size_idx"]
    n_lines = 1 + rng.poisson(sd._SIZE_LINES[size_idx[order_rest]] - 1.0)
    line_order = np.repeat(np.arange(len(order_rest), dtype=np.int64), n_lines)
    line_rest = order_rest[line_order]
    line_day = order_day[line_order]
    line_month = (line_day - epoch).astype("datetime64[D]").astype("datetime64[M]").astype(
        np.int64
    ) % 12
    line_early = (line_day - rest["signup"][line_rest]) < sd.WINDOW_DAYS
    base = _sample_base_products(model, world, rest, line_rest, line_month, line_early, rng)
    loyal = rng.random(len(base)) < world.loyalty
    product = catalog.choose(base, rng.random(len(base)))
    product[loyal] = own_brand(catalog, brand_key, line_rest[loyal], base[loyal])
    mu = np.maximum(1.0, model.base_qty[base] * sd._SIZE_QTY[size_idx[line_rest]])
    qty = 1 + rng.poisson(mu - 1.0)
    line_rank = order_rank[line_order]
    srt = sd.rank_then_product(order_rank, n_lines, product)
    line_rank, product, qty, line_order = line_rank[srt], product[srt], qty[srt], line_order[srt]
    first = np.ones(len(line_rank), dtype=bool)
    first[1:] = (line_rank[1:] != line_rank[:-1]) | (product[1:] != product[:-1])
    starts = np.flatnonzero(first)
    qty = np.add.reduceat(qty, starts) if len(starts) else qty[:0]
    total = sd._write_order_lines(
        path,
        fmt,
        rest["ids"],
        products_tbl,
        order_rest,
        order_ts,
        line_order[starts],
        line_rank[starts],
        product[starts],
        qty,
    )
    return total, params


# --------------------------------------------------------------------------------------------
# The whole sample
# --------------------------------------------------------------------------------------------
def generate_world_sample(
    files: sd.SampleFiles,
    world: World,
    *,
    n_restaurants: int,
    target_lines: float,
    seed: int,
    scale: str,
    fmt: str,
    registry=None,
) -> sd.SampleFiles:
    """Write one non-default world's restaurants, products, orders and ground truth to ``files``."""
    model = sd._model(registry)
    key = zlib.crc32(f"{world.name}:{world.seed}".encode())
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_restaurants, 20261031, key]))
    wrnd = random.Random(int(rng.integers(0, 2**63 - 1)))  # noqa: S311 (sample data)
    rest = sd._make_restaurants(model, n_restaurants, rng, _chooser(world, wrnd))
    if world.menu_affix_share > 0:
        menus = _house_menus(rest["table"]["menu"].to_pylist(), world.menu_affix_share, wrnd)
        col = rest["table"].schema.get_field_index("menu")
        rest["table"] = rest["table"].set_column(col, "menu", pa.array(menus, pa.string()))
    churn = rest["signup"] + world.churn_min_days
    churn = churn + np.floor(rng.exponential(world.churn_mean_days, n_restaurants)).astype(np.int64)
    rest["active_until"] = np.minimum(churn, sd.REFERENCE_END.toordinal())
    catalog = expand_catalog(model, world, rng)
    products_tbl = pa.table(
        {
            "product_id": [f"P{i + 1:04d}" for i in range(len(catalog.names))],
            "name": catalog.names,
            "category": catalog.categories,
            "unit_price": pa.array(catalog.prices, pa.int64()),
        }
    )
    sd._write_table(rest["table"], files.restaurants, fmt)
    sd._write_table(products_tbl, files.products, fmt)
    brand_key = int(rng.integers(0, 2**31 - 1))
    n_lines, params = _write_orders(
        model,
        world,
        catalog,
        rest,
        target_lines,
        rng,
        files.orders,
        fmt,
        products_tbl,
        brand_key,
    )
    params.update(brand_key=brand_key, world=world.name, world_knobs=world.knobs())
    _write_truth(model, world, catalog, rest, params, files.ground_truth, seed, scale, n_lines)
    return files


def _write_truth(
    model: sd._Model,
    world: World,
    catalog: Catalog,
    rest: dict,
    params: dict,
    gt_dir: Path,
    seed: int,
    scale: str,
    n_lines: int,
) -> None:
    """The default world's ground-truth files, plus what this world adds (listed dishes, SKUs,
    weights over base products); weights are already multiplied by the world's knobs."""
    scaled = {
        **params,
        # the oracle's expected quantities read one order rate: inside the first 30 days it is
        # the onboarding rate
        "orders_per_week_by_size": [
            r * world.onboarding_rate for r in params["orders_per_week_by_size"]
        ],
    }
    sd._write_ground_truth(model, rest, scaled, gt_dir, seed=seed, scale=scale, n_lines=n_lines)
    ids = np.asarray(rest["ids"], dtype=object)
    pq.write_table(
        pa.table(
            {
                "restaurant_id": ids[rest["item_rows"]].tolist(),
                "item_id": rest["item_ids"],
                "listed": rest["item_listed"],
            }
        ),
        gt_dir / "restaurant_items.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "product_id": [f"P{i + 1:04d}" for i in range(len(catalog.names))],
                "name": catalog.names,
                "base": catalog.base,
                "share": catalog.share,
            }
        ),
        gt_dir / "product_truth.parquet",
    )
    boost = _boost_vector(model, world)
    pq.write_table(
        pa.table(
            {
                "base": np.arange(model.n_products),
                "name": [p.name for p in model.products],
                "base_qty": model.base_qty,
                "boost": boost,
            }
        ),
        gt_dir / "base_products.parquet",
    )
    for name, matrix, key in (
        ("industry_weights", world.staple_weight * model.staples, "industry"),
        ("item_weights", world.item_weight * model.item_matrix, "item_id"),
    ):
        r, p = np.nonzero(matrix)
        keys = [model.industries[i] for i in r] if key == "industry" else r.astype(np.int64)
        pq.write_table(
            pa.table({key: keys, "base": p.astype(np.int64), "weight": matrix[r, p]}),
            gt_dir / f"{name}.parquet",
        )
    meta = json.loads((gt_dir / "params.json").read_text(encoding="utf-8"))
    meta["season_matrix"] = _season(model, world).tolist()
    text = json.dumps(meta, ensure_ascii=False, indent=1)
    (gt_dir / "params.json").write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Oracle and menu-visible ceiling
# --------------------------------------------------------------------------------------------
@dataclass
class _Truth:
    params: dict
    truth: pd.DataFrame  # restaurant_truth, all restaurants in generation order
    items: pd.DataFrame  # restaurant_id, item_id, listed
    n_items: int
    ind_w: np.ndarray  # industry x base
    item_w: np.ndarray  # item x base
    base_qty: np.ndarray
    boost: np.ndarray
    prod_ids: np.ndarray  # SKU ids
    sku_base: np.ndarray
    sku_share: np.ndarray


def _load_truth(gt: Path) -> _Truth:
    """Both ground-truth layouts (default world: weights by product id) as one structure."""
    params = json.loads((gt / "params.json").read_text(encoding="utf-8"))
    truth = pd.read_parquet(gt / "restaurant_truth.parquet")
    items = pd.read_parquet(gt / "restaurant_items.parquet")
    n_items = len(pd.read_parquet(gt / "menu_items.parquet", columns=["item_id"]))
    codes = {c: i for i, c in enumerate(params["industries"])}
    products = pd.read_parquet(gt / "product_truth.parquet")
    prod_ids = products["product_id"].astype(str).to_numpy()
    ind_df = pd.read_parquet(gt / "industry_weights.parquet")
    item_df = pd.read_parquet(gt / "item_weights.parquet")
    if "base" in products.columns:  # a world of this module
        bases = pd.read_parquet(gt / "base_products.parquet")
        base_qty, boost = bases["base_qty"].to_numpy(), bases["boost"].to_numpy()
        sku_base = products["base"].to_numpy()
        sku_share = products["share"].to_numpy()
        ind_col, item_col = ind_df["base"].to_numpy(), item_df["base"].to_numpy()
    else:
        base_qty, boost = products["base_qty"].to_numpy(), np.ones(len(products))
        sku_base, sku_share = np.arange(len(products)), np.ones(len(products))
        pos = pd.Series(np.arange(len(products)), index=prod_ids)
        ind_col = pos.loc[ind_df["product_id"]].to_numpy()
        item_col = pos.loc[item_df["product_id"]].to_numpy()
        flags = truth.set_index("restaurant_id")["hard_cases"]
        empty = flags.loc[items["restaurant_id"]].str.contains("empty_menu").to_numpy()
        items = items.assign(listed=~empty)
    n_b = len(base_qty)
    ind_w = np.zeros((len(codes), n_b))
    np.add.at(ind_w, (ind_df["industry"].map(codes).to_numpy(), ind_col), ind_df["weight"])
    item_w = np.zeros((n_items, n_b))
    np.add.at(item_w, (item_df["item_id"].to_numpy(), item_col), item_df["weight"])
    return _Truth(
        params, truth, items, n_items, ind_w, item_w, base_qty, boost, prod_ids, sku_base, sku_share
    )


def _item_counts(t: _Truth, rows: np.ndarray, listed_only: bool) -> np.ndarray:
    """(len(rows) x items) dish counts of the restaurants at truth positions ``rows``."""
    pos = pd.Series(np.arange(len(t.truth)), index=t.truth["restaurant_id"].astype(str))
    local = np.full(len(t.truth), -1, dtype=np.int64)
    local[rows] = np.arange(len(rows))
    items = t.items[t.items["listed"]] if listed_only else t.items
    r = local[pos.loc[items["restaurant_id"].astype(str)].to_numpy()]
    keep = r >= 0
    counts = np.zeros((len(rows), t.n_items))
    np.add.at(counts, (r[keep], items["item_id"].to_numpy()[keep]), 1.0)
    return counts


def _expected_hidden(t: _Truth, rows: np.ndarray) -> np.ndarray:
    """E[unlisted dishes | true industry, whether the menu is empty], from the whole population:
    what someone who knows the generator (not the restaurant) expects beyond the listed dishes."""
    every = np.arange(len(t.truth))
    hidden = _item_counts(t, every, False) - _item_counts(t, every, True)
    listed_any = _item_counts(t, every, True).sum(axis=1) > 0
    group = pd.Series(t.truth["industry"].astype(str).to_numpy()) + np.where(listed_any, "+", "-")
    mean = pd.DataFrame(hidden).groupby(group.to_numpy()).mean()
    return mean.loc[group.to_numpy()[rows]].to_numpy()


def expected_scores(
    ground_truth_dir: Path | str, restaurant_ids: Sequence[str], visible_only: bool
) -> pd.DataFrame:
    """Expected first-30-day quantity per (restaurant, SKU); zero scores omitted.

    ``visible_only=False``: the full oracle (every cooked dish, the restaurant's own brands).
    ``visible_only=True``: the menu-visible ceiling: the true industry and size, the listed dishes
    plus the dishes expected beyond them, brands by market share; what the best name + menu model
    could know, not the realized orders. Works for the default world's ground truth too.
    """
    t = _load_truth(Path(ground_truth_dir))
    ids = list(dict.fromkeys(str(r) for r in restaurant_ids))
    pos = pd.Series(np.arange(len(t.truth)), index=t.truth["restaurant_id"].astype(str))
    missing = [r for r in ids if r not in pos.index]
    if missing:
        raise ValueError(f"{len(missing)} unknown restaurant ids, e.g. {missing[:3]}")
    rows = pos.loc[ids].to_numpy().astype(np.int64)
    sub = t.truth.iloc[rows].reset_index(drop=True)
    counts = _item_counts(t, rows, listed_only=visible_only)
    if visible_only:
        counts = counts + _expected_hidden(t, rows)
    codes = {c: i for i, c in enumerate(t.params["industries"])}
    weights = t.ind_w[sub["industry"].map(codes).to_numpy()] + counts @ t.item_w
    weights = weights * t.boost[None, :]
    base_exp = sd.expected_matrix(sub, t.params, t.base_qty, weights)
    share = np.broadcast_to(t.sku_share, (len(rows), len(t.sku_share))).copy()
    loyalty = float(t.params.get("world_knobs", {}).get("loyalty", 0.0))
    if not visible_only and loyalty > 0:
        catalog = Catalog([], [], [], t.sku_base, t.sku_share, _cum(t.sku_base, t.sku_share))
        n_b = len(t.base_qty)
        rr = np.repeat(rows, n_b)
        bb = np.tile(np.arange(n_b), len(rows))
        own = own_brand(catalog, int(t.params["brand_key"]), rr, bb).reshape(len(rows), n_b)
        share *= 1.0 - loyalty
        share[np.arange(len(rows))[:, None], own] += loyalty
    expected = base_exp[:, t.sku_base] * share
    r_ix, p_ix = np.nonzero(expected > 0)
    return pd.DataFrame(
        {
            "restaurant_id": sub["restaurant_id"].astype(str).to_numpy()[r_ix],
            "product_id": t.prod_ids[p_ix],
            "score": expected[r_ix, p_ix],
        }
    )


def _cum(base: np.ndarray, share: np.ndarray) -> np.ndarray:
    cum = np.empty_like(share)
    for j in np.unique(base):
        sel = base == j
        c = np.cumsum(share[sel])
        c[-1] = 1.0
        cum[sel] = j + c
    return cum


def ceiling_scores(ground_truth_dir: Path | str, restaurant_ids: Sequence[str]) -> pd.DataFrame:
    """The menu-visible ceiling's scores (see ``expected_scores``)."""
    return expected_scores(ground_truth_dir, restaurant_ids, visible_only=True)


__all__ = [
    "DEFAULT_WORLD",
    "RANDOM_WORLD",
    "World",
    "ceiling_scores",
    "expected_scores",
    "generate_world_sample",
    "load_worlds",
    "resolve_world",
    "world_names",
]
