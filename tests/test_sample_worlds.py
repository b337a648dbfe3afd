"""The sample generator's worlds: valid inputs for the real ingest, the property each world claims,
the default world unchanged, `--world random` reproducible, the ceiling's definition."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from recsys_assets import sample_worlds
from recsys_assets.datafiles import DataFileError
from recsys_assets.sample_data import (
    _default_model,
    _parse_catalog,
    generate_sample,
    oracle_scores,
)
from recsys_assets.sample_worlds import (
    RANDOM_WORLD,
    ceiling_scores,
    load_worlds,
    resolve_world,
    world_names,
)
from recsys_assets.warehouse.ingest import ingest_orders, ingest_products, ingest_restaurants

REPO = Path(__file__).resolve().parents[1]
# main's commit just before worlds existed: its sample_data.py is the reference for the default
# world (same data files, the old code), so the default world must still draw exactly what it drew.
PRE_WORLDS_COMMIT = "0b655f9"
NAMED = [w for w in world_names() if w != RANDOM_WORLD]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _pre_worlds_generator(tmp_path: Path, monkeypatch):
    """sample_data.py as of PRE_WORLDS_COMMIT, imported as a module of its own."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    src = subprocess.run(
        ["git", "show", f"{PRE_WORLDS_COMMIT}:recsys_assets/sample_data.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if src.returncode != 0:
        pytest.skip(f"commit {PRE_WORLDS_COMMIT} is not in this clone: {src.stderr.strip()}")
    path = tmp_path / "pre_worlds_sample_data.py"
    path.write_text(src.stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("pre_worlds_sample_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


def test_default_world_is_byte_identical_to_the_generator_before_worlds(tmp_path, monkeypatch):
    old = _pre_worlds_generator(tmp_path, monkeypatch)
    for fmt in ("csv", "parquet"):
        old.generate_sample(tmp_path / f"old-{fmt}", n_restaurants=120, seed=11, fmt=fmt)
        generate_sample(tmp_path / f"new-{fmt}", n_restaurants=120, seed=11, fmt=fmt)
        generate_sample(
            tmp_path / f"named-{fmt}", n_restaurants=120, seed=11, fmt=fmt, world="default"
        )
        reference = _digest(tmp_path / f"old-{fmt}")
        assert len(reference) == 10  # 3 inputs + 7 ground-truth files
        assert _digest(tmp_path / f"new-{fmt}") == reference
        assert _digest(tmp_path / f"named-{fmt}") == reference


@pytest.mark.parametrize("world", [*NAMED, RANDOM_WORLD])
def test_every_world_ingests_cleanly(tmp_path, world):
    files = generate_sample(tmp_path / "s", n_restaurants=150, seed=5, fmt="csv", world=world)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest_restaurants(con, files.restaurants)
    ingest_products(con, files.products)
    ingest_orders(con, files.orders)
    rejected = con.execute("SELECT count(*) FROM rejected_rows").fetchone()
    assert rejected == (0,)
    for table, path in (
        ("restaurants", files.restaurants),
        ("products", files.products),
        ("orders", files.orders),
    ):
        n = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert n == (len(pd.read_csv(path)),), table
    assert con.execute("SELECT count(*) FROM orders").fetchone()[0] > 3000
    con.close()


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict:
    """600 restaurants of each named world (one seed): orders with base products, ground truth."""
    out = {}
    for world in NAMED:
        files = generate_sample(
            tmp_path_factory.mktemp(world), n_restaurants=600, seed=3, world=world
        )
        truth = sample_worlds._load_truth(files.ground_truth)
        orders = pd.read_parquet(files.orders)
        base = pd.Series(truth.sku_base, index=truth.prod_ids)
        orders["base"] = base.loc[orders["product_id"]].to_numpy()
        out[world] = (files, truth, orders)
    return out


def _precision_at_10(truth, orders) -> tuple[float, float]:
    """Mean precision@10 (base products ever bought) of two rankings per restaurant: its
    industry's popularity among the other restaurants of that industry, and the ingredient
    weights of the dishes its menu lists. Restaurants with an empty menu are left out."""
    ids = truth.truth["restaurant_id"].astype(str).tolist()
    pos = {r: i for i, r in enumerate(ids)}
    bought = np.zeros((len(ids), len(truth.base_qty)), dtype=bool)
    bought[orders["restaurant_id"].map(pos).to_numpy(), orders["base"].to_numpy()] = True
    listed = truth.items[truth.items["listed"]]
    dish_w = np.zeros(bought.shape)
    rows = listed["restaurant_id"].map(pos).to_numpy()
    np.add.at(dish_w, rows, truth.item_w[listed["item_id"].to_numpy()])
    industry = truth.truth["industry"].to_numpy()
    by_industry, by_dish = [], []
    for code in np.unique(industry):
        peers = np.flatnonzero(industry == code)
        total = bought[peers].sum(axis=0)
        for r in peers:
            k = min(10, int((dish_w[r] > 0).sum()))
            if k == 0 or len(peers) < 2:
                continue
            popularity = total - bought[r]
            by_industry.append(bought[r, np.argsort(-popularity, kind="stable")[:k]].mean())
            by_dish.append(bought[r, np.argsort(-dish_w[r], kind="stable")[:k]].mean())
    return float(np.mean(by_industry)), float(np.mean(by_dish))


def test_listed_dishes_predict_purchases_better_than_industry_in_dish_driven_worlds(samples):
    figures = {w: _precision_at_10(t, o) for w, (_, t, o) in samples.items()}
    lift = {w: dish / ind for w, (ind, dish) in figures.items()}
    assert lift["recipe"] > 1.05, figures
    assert lift["menu_items"] > 1.4, figures
    # the menu_items world: the menu decides far more than in the default world
    assert lift["menu_items"] > lift["default"] + 0.3, figures


def test_menu_items_world_mixes_industries_in_one_kitchen(samples):
    shares = {}
    for world, (files, _, _) in samples.items():
        flags = pd.read_parquet(files.ground_truth / "restaurant_truth.parquet")["hard_cases"]
        shares[world] = flags.str.contains("mixed_menu").mean()
    assert shares["menu_items"] > 0.25, shares
    assert shares["default"] < 0.1, shares


def _top_brand_share(orders: pd.DataFrame, n_skus: pd.Series) -> float:
    """Mean share of a restaurant's most bought SKU of a product (products with 2+ SKUs that
    it bought at least 5 times)."""
    o = orders[orders["base"].map(n_skus) > 1]
    lines = o.groupby(["restaurant_id", "base", "product_id"]).size().rename("n").reset_index()
    total = lines.groupby(["restaurant_id", "base"])["n"].transform("sum")
    lines = lines[total >= 5].assign(share=lambda d: d["n"] / total[total >= 5])
    return float(lines.groupby(["restaurant_id", "base"])["share"].max().mean())


def test_house_menus_write_the_same_dishes_beyond_the_shared_vocabulary(samples):
    names = {name for item in _default_model().items for name in item.names}

    def vocabulary_share(world):
        menus = pd.read_parquet(samples[world][0].restaurants)["menu"]
        items = [i.strip() for m in menus if m for i in m.split("|")]
        return np.mean([i in names for i in items])

    assert vocabulary_share("default") > 0.8
    assert vocabulary_share("house_menus") < vocabulary_share("default") - 0.4
    # the dishes behind the text are drawn as in the default world: as many per restaurant
    n_items = {w: len(samples[w][1].items) for w in ("default", "house_menus")}
    assert abs(n_items["house_menus"] / n_items["default"] - 1) < 0.1, n_items


def test_brand_loyalty_is_measurable_against_shuffled_brands(samples):
    rng = np.random.default_rng(0)
    gaps = {}
    for world in ("recipe", "long_tail"):
        _, truth, orders = samples[world]
        n_skus = pd.Series(truth.sku_base).value_counts()
        observed = _top_brand_share(orders, n_skus)
        # the same purchases with each product's brands shuffled across restaurants: market
        # shares kept, loyalty destroyed
        shuffled = orders.assign(
            product_id=orders.groupby("base")["product_id"].transform(
                lambda s: rng.permutation(s.to_numpy())
            )
        )
        gaps[world] = observed - _top_brand_share(shuffled, n_skus)
    assert gaps["recipe"] > 0.15, gaps
    assert gaps["long_tail"] > 0.05, gaps
    assert gaps["recipe"] > gaps["long_tail"], gaps  # loyalty 0.85 vs 0.55 in worlds.yaml


def test_catalog_structures_differ(samples):
    n_products = {w: len(t.prod_ids) for w, (_, t, _) in samples.items()}
    n_base = len(samples["default"][1].base_qty)
    assert n_products["default"] == n_products["menu_items"] == n_base
    assert n_base * 1.3 < n_products["recipe"] < n_products["long_tail"]
    assert n_products["long_tail"] > 3 * n_base


def test_onboarding_burst_front_loads_orders_and_packaging(samples):
    def first_month(world):
        files, _, orders = samples[world]
        rest = pd.read_parquet(files.restaurants)[["restaurant_id", "signup_date"]]
        products = pd.read_parquet(files.products)[["product_id", "category"]]
        o = orders.merge(rest, on="restaurant_id").merge(products, on="product_id")
        age = (o["ordered_at"] - pd.to_datetime(o["signup_date"])).dt.days
        early = o[age < 30]
        late = o[(age >= 30) & (age < 60)]
        packaging = "포장·위생용품"
        return (
            len(early) / max(1, len(late)),
            (early["category"] == packaging).mean() / (late["category"] == packaging).mean(),
        )

    default_volume, default_mix = first_month("default")
    recipe_volume, recipe_mix = first_month("recipe")
    assert recipe_volume > 1.3 * default_volume
    assert recipe_mix > 1.5, recipe_mix
    assert default_mix < 1.2, default_mix


def test_weekly_rhythm(samples):
    weekday = {
        w: o.drop_duplicates("order_id")["ordered_at"].dt.dayofweek.value_counts(normalize=True)
        for w, (_, _, o) in samples.items()
    }
    assert weekday["recipe"][6] < 0.08 < weekday["default"][6]  # Sundays
    assert weekday["recipe"][4] > weekday["recipe"][6] * 3


def test_ceiling_is_the_oracle_when_the_menu_shows_everything(samples):
    """menu_items lists every dish and has no brands: ceiling == oracle (non-empty menus);
    recipe hides dishes and brand habits: the two rank differently for most restaurants."""

    def top10(df):
        ranked = df.sort_values(["restaurant_id", "score"], ascending=[True, False])
        return ranked.groupby("restaurant_id")["product_id"].apply(lambda s: tuple(s[:10]))

    for world, expect_same in (("menu_items", True), ("recipe", False)):
        files, truth, _ = samples[world]
        listed = truth.items[truth.items["listed"]]["restaurant_id"].unique()[:80].tolist()
        same = top10(ceiling_scores(files.ground_truth, listed)) == top10(
            oracle_scores(files.ground_truth, listed)
        )
        if expect_same:
            assert same.all(), world
        else:
            assert same.mean() < 0.3, world


def test_random_world_is_reproducible_per_seed(tmp_path):
    assert resolve_world(RANDOM_WORLD, 4) == resolve_world(RANDOM_WORLD, 4)
    assert resolve_world(RANDOM_WORLD, 4) != resolve_world(RANDOM_WORLD, 5)
    a = generate_sample(tmp_path / "a", n_restaurants=100, seed=4, world="random")
    generate_sample(tmp_path / "b", n_restaurants=100, seed=4, world="random")
    c = generate_sample(tmp_path / "c", n_restaurants=100, seed=5, world="random")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["orders.parquet"] != _digest(tmp_path / "c")["orders.parquet"]
    assert a.ground_truth.is_dir() and c.ground_truth.is_dir()


def test_unknown_world_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"unknown world 'nope'.*recipe.*random"):
        generate_sample(tmp_path, n_restaurants=10, world="nope")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "recsys_assets.cli", "generate-sample", "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--world", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "--world must be one of default, recipe" in proc.stderr.strip().splitlines()[-1]
    assert not out.exists() and not any(tmp_path.iterdir())


def test_a_bad_worlds_file_names_its_line(tmp_path):
    text = (REPO / "recsys_assets/data/worlds.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "worlds.yaml"
    bad.write_text(text.replace("loyalty: 0.85", "loyalty: 1.85"), encoding="utf-8")
    line = next(i for i, s in enumerate(bad.read_text().splitlines(), 1) if "1.85" in s)
    with pytest.raises(DataFileError, match=rf"worlds.yaml:{line}: world 'recipe': loyalty"):
        load_worlds(bad)


def test_the_default_world_is_the_one_the_project_was_tuned_on():
    worlds, _ = load_worlds()
    assert [w for w in worlds.values() if w.tuned_on] == [worlds["default"]]
    assert dataclasses.replace(worlds["default"], tuned_on=False).is_default


def test_the_pipeline_generates_the_configured_world(tmp_path, monkeypatch):
    from recsys_assets.config import ConfigError, load_settings
    from recsys_assets.sources import ensure_source_dir

    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)
    monkeypatch.delenv("RECSYS_SAMPLE_WORLD", raising=False)
    assert load_settings().sample_dir.name == "small-seed42"  # the default world's folder as before
    monkeypatch.setenv("RECSYS_SAMPLE_WORLD", "Long_Tail")
    settings = load_settings()
    assert settings.sample_dir.name == "small-seed42-long_tail"
    source = ensure_source_dir(settings)
    assert source == settings.sample_dir
    products = pd.read_parquet(source / "products.parquet")
    assert len(products) > 3 * len(_parse_catalog())  # long_tail: brand SKUs of each product
    monkeypatch.setenv("RECSYS_SAMPLE_WORLD", "nope")
    with pytest.raises(ConfigError, match="RECSYS_SAMPLE_WORLD must be one of default, recipe"):
        load_settings()
