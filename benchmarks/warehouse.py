"""Benchmark: the industry tables in DuckDB SQL vs the same computation in pandas.

Usage: .venv/bin/python benchmarks/warehouse.py [--scales medium large] [--repeats medium=3 large=2]
           [--warehouse large=PATH/warehouse.duckdb] [--work-dir DIR] [--report-json PATH]

For each scale, one warehouse (restaurants, orders, restaurant_industry from the offline labeler) is
the input of both implementations in the same run:

- DuckDB: `build_industry_product_stats` + `build_industry_top_products` (what the assets run);
- pandas: the same definitions with merge/groupby on frames already in memory (loading the three
  tables into pandas is timed apart, so the ratio does not penalise pandas for I/O).

Both must give the same top-products lists (industry, rank, product_id) and scores within 1e-9;
the script says so, and exits 1 if they differ. Figures are medians of the repeats.
A `--warehouse scale=PATH` reuses a warehouse built elsewhere (run_all passes the rebuilds' ones;
the file is copied, never written).
"""

from __future__ import annotations

import argparse
import gc
import math
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.common import machine, median, print_table, write_json  # noqa: E402
from recsys_assets.warehouse import tables  # noqa: E402


def load_frames(con) -> dict[str, pd.DataFrame]:
    return {
        "restaurants": con.execute("SELECT restaurant_id, signup_date FROM restaurants").df(),
        "restaurant_industry": con.execute(
            "SELECT restaurant_id, industry FROM restaurant_industry"
        ).df(),
        "orders": con.execute(
            "SELECT restaurant_id, product_id, order_id, quantity, ordered_at FROM orders"
        ).df(),
    }


def pandas_tables(frames: dict[str, pd.DataFrame], as_of, k: int = tables.TOP_K_PER_INDUSTRY):
    """industry_product_stats and industry_top_products, same definitions as the SQL."""
    as_of = pd.Timestamp(as_of)
    smoothing, half_life = tables.SMOOTHING_RESTAURANTS, tables.RECENCY_HALF_LIFE_DAYS
    rest = frames["restaurants"]
    rest = rest[pd.to_datetime(rest["signup_date"]) < as_of]
    labeled = rest[["restaurant_id"]].merge(frames["restaurant_industry"], on="restaurant_id")
    orders = frames["orders"]
    po = orders[orders["ordered_at"] < as_of].merge(labeled, on="restaurant_id")
    industry_size = labeled.groupby("industry").size().rename("industry_restaurants")
    n_total = len(labeled)
    global_buyers = po.groupby("product_id")["restaurant_id"].nunique().rename("global_buyers")
    # date_diff('second', ...) counts whole-second boundaries.
    secs = (as_of.floor("s") - po["ordered_at"].dt.floor("s")).dt.total_seconds().to_numpy()
    po = po.assign(rq=po["quantity"].to_numpy() * np.exp(-math.log(2) * secs / 86400.0 / half_life))
    g = po.groupby(["industry", "product_id"], sort=False)
    per_pair = pd.DataFrame(
        {
            "buyers": g["restaurant_id"].nunique(),
            "orders": g["order_id"].nunique(),
            "quantity": g["quantity"].sum(),
            "recency_quantity": g["rq"].sum(),
        }
    ).reset_index()
    s = per_pair.join(industry_size, on="industry").join(global_buyers, on="product_id")
    gp = s["global_buyers"] / n_total
    s["penetration"] = s["buyers"] / s["industry_restaurants"]
    s["global_penetration"] = gp
    s["lift"] = s["penetration"] / gp
    s["recency_score"] = s["recency_quantity"] / s["industry_restaurants"]
    s["smoothed_penetration"] = (s["buyers"] + smoothing * gp) / (
        s["industry_restaurants"] + smoothing
    )
    stats = s.sort_values(["industry", "product_id"], ignore_index=True)
    top = stats.sort_values(
        ["industry", "smoothed_penetration", "recency_score", "quantity", "product_id"],
        ascending=[True, False, False, False, True],
        kind="mergesort",
    )
    top = top.assign(rank=top.groupby("industry").cumcount() + 1)
    top = top[top["rank"] <= k][["industry", "rank", "product_id", "smoothed_penetration"]]
    top = top.rename(columns={"smoothed_penetration": "score"}).reset_index(drop=True)
    return stats, top


def duckdb_tables(con) -> float:
    t = time.perf_counter()
    tables.build_industry_product_stats(con)
    tables.build_industry_top_products(con)
    return time.perf_counter() - t


def bench_scale(db_src: Path, work: Path, scale: str, repeats: int) -> dict:
    import duckdb

    db = work / f"warehouse-bench-{scale}.duckdb"
    shutil.copyfile(db_src, db)
    con = duckdb.connect(str(db))
    n_rest = con.execute("SELECT count(*) FROM restaurants").fetchall()[0][0]
    n_lines = con.execute("SELECT count(*) FROM orders").fetchall()[0][0]
    newest = con.execute("SELECT max(ordered_at) FROM orders").fetchall()[0][0]
    as_of = newest + timedelta(seconds=1)

    duck_s = [duckdb_tables(con) for _ in range(repeats)]
    duck_top = con.execute(
        "SELECT industry, rank, product_id, score FROM industry_top_products "
        "ORDER BY industry, rank"
    ).df()

    t = time.perf_counter()
    frames = load_frames(con)
    load_s = time.perf_counter() - t
    con.close()
    pd_s, pd_top = [], None
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        _, pd_top = pandas_tables(frames, as_of)
        pd_s.append(time.perf_counter() - t)
    if pd_top is None:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    del frames
    gc.collect()

    a = duck_top.reset_index(drop=True)
    b = pd_top.reset_index(drop=True)
    same_lists = (
        len(a) == len(b)
        and (a["industry"].astype(str).to_numpy() == b["industry"].astype(str).to_numpy()).all()
        and (a["rank"].astype(int).to_numpy() == b["rank"].astype(int).to_numpy()).all()
        and (a["product_id"].astype(str).to_numpy() == b["product_id"].astype(str).to_numpy()).all()
    )
    max_score_diff = (
        float(np.abs(a["score"].to_numpy(float) - b["score"].to_numpy(float)).max())
        if same_lists and len(a)
        else float("nan")
    )
    db.unlink(missing_ok=True)
    return {
        "scale": scale,
        "restaurants": int(n_rest),
        "order_lines": int(n_lines),
        "repeats": repeats,
        "duckdb_s": median(duck_s),
        "duckdb_runs": duck_s,
        "pandas_s": median(pd_s),
        "pandas_runs": pd_s,
        "pandas_load_s": load_s,
        "ratio": median(pd_s) / median(duck_s),
        "ratio_with_load": (median(pd_s) + load_s) / median(duck_s),
        "top_rows": len(a),
        "same_top_lists": bool(same_lists),
        "max_score_diff": max_score_diff,
    }


def prepare(work: Path, scale: str) -> Path:
    from benchmarks.ranking import prepare_warehouse

    con, _ = prepare_warehouse(work, scale)
    path = Path(
        con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall()[0][0]
    )
    con.close()
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="+", default=["medium", "large"])
    ap.add_argument(
        "--repeats", nargs="*", default=[], help="scale=N (default: small/medium 3, large 2)"
    )
    ap.add_argument(
        "--warehouse", nargs="*", default=[], help="scale=PATH of an existing warehouse"
    )
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--report-json", default=None)
    args = ap.parse_args(argv)
    repeats = {"small": 3, "medium": 3, "large": 2}
    repeats.update({k: int(v) for k, v in (x.split("=", 1) for x in args.repeats)})
    given = {k: Path(v) for k, v in (x.split("=", 1) for x in args.warehouse)}
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="wh-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    results = []
    for scale in args.scales:
        src = given.get(scale)
        if src is None or not src.exists():
            src = prepare(work, scale)
        results.append(bench_scale(src, work, scale, repeats.get(scale, 1)))

    print(
        "warehouse benchmark: DuckDB SQL vs pandas (industry_product_stats + industry_top_products)"
    )
    print_table(
        [
            "scale",
            "restaurants",
            "order lines",
            "runs",
            "DuckDB s",
            "pandas s",
            "pandas/DuckDB",
            "pandas load s",
            "incl. load",
            "same top lists",
            "max |score diff|",
        ],
        [
            [
                r["scale"],
                f"{r['restaurants']:,}",
                f"{r['order_lines']:,}",
                r["repeats"],
                f"{r['duckdb_s']:.2f}",
                f"{r['pandas_s']:.2f}",
                f"{r['ratio']:.1f}x",
                f"{r['pandas_load_s']:.2f}",
                f"{r['ratio_with_load']:.1f}x",
                r["same_top_lists"],
                f"{r['max_score_diff']:.1e}",
            ]
            for r in results
        ],
    )
    write_json(args.report_json, {"machine": machine(), "results": results})
    return 0 if all(r["same_top_lists"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
