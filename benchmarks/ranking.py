"""Benchmark of the cold-start ranking step: build, train, evaluate, log, predict.

Usage: .venv/bin/python benchmarks/ranking.py [--scales small medium] [--n-restaurants N] [--seed 42]
           [--no-mlflow] [--labels offline|truth]

For each scale: generates the sample (cached under $TMPDIR), ingests it, labels industries with the
offline labeler, builds the dataset, trains, evaluates against industry/global popularity and the
oracle, logs to a throw-away MLflow store, and measures warm pyfunc latency. Prints a table; exit 0.
Peak memory is the process's max RSS (ru_maxrss) measured after each phase; since it only grows, the
per-scale figure is the high-water mark up to the end of that scale.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare_warehouse(
    out_dir: Path,
    scale: str,
    seed: int = 42,
    n_restaurants: int | None = None,
    labels: str = "offline",
    world: str = "default",
):
    """Sample -> DuckDB warehouse with restaurants, products, orders, restaurant_industry.

    ``world``: the sample generator's world (recsys_assets/data/worlds.yaml; benchmarks/worlds.py).
    """
    import duckdb
    import pandas as pd

    from recsys_assets.sample_data import generate_sample
    from recsys_assets.warehouse.ingest import ingest_orders, ingest_products, ingest_restaurants

    tag = f"{scale}-{seed}-{n_restaurants or 'full'}"
    if world != "default":
        tag += f"-{world}"
    sample_dir = out_dir / "sample" / tag
    if not (sample_dir / "orders.parquet").exists():
        generate_sample(
            sample_dir, scale=scale, seed=seed, n_restaurants=n_restaurants, world=world
        )
    db = out_dir / f"warehouse-{tag}.duckdb"
    if db.exists():
        db.unlink()
    con = duckdb.connect(str(db))
    ingest_restaurants(con, sample_dir / "restaurants.parquet")
    ingest_products(con, sample_dir / "products.parquet")
    ingest_orders(con, sample_dir / "orders.parquet")
    rows = con.execute("SELECT restaurant_id, name, menu, description FROM restaurants").fetchall()
    if labels == "truth":
        truth = pd.read_parquet(sample_dir / "ground_truth" / "restaurant_truth.parquet")
        lab = pd.DataFrame(
            {
                "restaurant_id": truth["restaurant_id"].astype(str),
                "industry": truth["industry"].astype(str),
                "confidence": 1.0,
                "source": "truth",
            }
        )
    else:
        from recsys_assets.labeling.offline import OfflineLabeler

        preds = OfflineLabeler().predict_many((n, m, d) for _, n, m, d in rows)
        lab = pd.DataFrame(
            {
                "restaurant_id": [r[0] for r in rows],
                "industry": [p.industry for p in preds],
                "confidence": [float(p.confidence) for p in preds],
                "source": "offline",
            }
        )
    lab["labeled_at"] = datetime(2026, 1, 1)
    con.register("lab_df", lab)
    con.execute(
        "CREATE OR REPLACE TABLE restaurant_industry AS SELECT restaurant_id, industry, confidence, "
        "source, CAST(labeled_at AS TIMESTAMP) AS labeled_at FROM lab_df"
    )
    con.unregister("lab_df")
    return con, sample_dir / "ground_truth"


def run_scale(
    work: Path, scale: str, seed: int, n_restaurants: int | None, labels: str, use_mlflow: bool
) -> dict:
    import pandas as pd

    from recsys_assets.ranking.dataset import build_ranking_dataset
    from recsys_assets.ranking.evaluate import evaluate
    from recsys_assets.ranking.pyfunc_model import RankerServer, export_serving_artifacts
    from recsys_assets.ranking.train import train_ranker

    res: dict = {"scale": scale}
    t = time.perf_counter()
    con, gt = prepare_warehouse(work, scale, seed, n_restaurants, labels)
    res["prepare_s"] = time.perf_counter() - t
    res["restaurants"] = con.execute("SELECT count(*) FROM restaurants").fetchall()[0][0]
    res["order_lines"] = con.execute("SELECT count(*) FROM orders").fetchall()[0][0]
    t = time.perf_counter()
    dset = build_ranking_dataset(con)
    res["dataset_s"] = time.perf_counter() - t
    res["train_queries"] = dset.counts.get("train_queries", 0)
    res["test_queries"] = dset.counts.get("test_queries", 0)
    res["candidate_recall"] = dset.candidate_recall.get("test", float("nan"))
    t = time.perf_counter()
    trained = train_ranker(con, dset)
    res["train_s"] = time.perf_counter() - t
    res["best_iteration"] = trained.best_iteration
    t = time.perf_counter()
    ev = evaluate(con, trained, dset, ground_truth_dir=gt)
    res["evaluate_s"] = time.perf_counter() - t
    res["eval"] = ev
    if use_mlflow:
        from recsys_assets.config import load_settings
        from recsys_assets.ranking.registry import log_to_mlflow

        os.environ["RECSYS_HOME"] = str(work / f"home-{scale}")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        t = time.perf_counter()
        log_to_mlflow(con, trained, ev, dset, load_settings())
        res["mlflow_log_s"] = time.perf_counter() - t
    art = work / f"serving-{scale}"
    export_serving_artifacts(con, trained, dset, art)
    t = time.perf_counter()
    server = RankerServer(art)
    res["server_load_s"] = time.perf_counter() - t
    reqs = [
        pd.DataFrame(
            [{"name": "바삭바삭 치킨 역삼점", "menu": "후라이드치킨|양념치킨|치즈볼", "k": 10}]
        ),
        pd.DataFrame([{"industry": "pizza", "k": 10}]),
        pd.DataFrame(
            [
                {
                    "name": "엄마손 분식",
                    "menu": "떡볶이|김밥|순대",
                    "region": "서울 강남구",
                    "size": "small",
                    "k": 10,
                }
            ]
        ),
    ]
    server.recommend(reqs[0])
    lat = []
    for i in range(60):
        t = time.perf_counter()
        server.recommend(reqs[i % len(reqs)])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    res["predict_p50_ms"] = lat[len(lat) // 2]
    res["predict_p95_ms"] = lat[int(len(lat) * 0.95)]
    batch = (
        con.execute("SELECT restaurant_id, name, menu FROM restaurants LIMIT 1000")
        .df()
        .assign(k=10)
    )
    t = time.perf_counter()
    server.recommend(batch)
    res["batch_1000_s"] = time.perf_counter() - t
    res["peak_rss_mb"] = _rss_mb()
    con.close()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="+", default=["small", "medium"])
    ap.add_argument("--n-restaurants", type=int, default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--labels", choices=["offline", "truth"], default="offline")
    ap.add_argument("--no-mlflow", action="store_true")
    ap.add_argument("--work-dir", default=None, help="cache dir for samples (default: a temp dir)")
    ap.add_argument("--report-json", default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    from recsys_assets.ranking.evaluate import format_report

    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="rk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for scale in args.scales:
        r = run_scale(work, scale, args.seed, args.n_restaurants, args.labels, not args.no_mlflow)
        results.append(r)
        print(f"\n== {scale}: {r['restaurants']} restaurants, {r['order_lines']} order lines ==")
        print(format_report(r["eval"]))
        print(r["eval"].per_industry.round(3).to_string(index=False))

    cols = [
        ("scale", "{}"),
        ("restaurants", "{:,}"),
        ("order_lines", "{:,}"),
        ("train_queries", "{:,}"),
        ("test_queries", "{:,}"),
        ("dataset_s", "{:.1f}"),
        ("train_s", "{:.1f}"),
        ("evaluate_s", "{:.1f}"),
        ("mlflow_log_s", "{:.1f}"),
        ("peak_rss_mb", "{:.0f}"),
        ("predict_p50_ms", "{:.1f}"),
        ("predict_p95_ms", "{:.1f}"),
        ("batch_1000_s", "{:.2f}"),
    ]
    print(
        "\n"
        + " | ".join(c for c, _ in cols)
        + " | ndcg@10 model / industry_pop / global_pop / oracle"
    )
    for r in results:
        ev = r["eval"]
        cells = [f.format(r[c]) if c in r else "-" for c, f in cols]
        b = ev.baselines
        cells.append(
            f"{ev.metrics['ndcg_at_10']:.4f} / {b['industry_popularity']['ndcg_at_10']:.4f} / "
            f"{b['global_popularity']['ndcg_at_10']:.4f} / "
            f"{b.get('oracle', {}).get('ndcg_at_10', float('nan')):.4f}"
        )
        print(" | ".join(cells))
    if args.report_json:
        import json

        Path(args.report_json).write_text(
            json.dumps(
                [
                    {
                        **{k: v for k, v in r.items() if k != "eval"},
                        "metrics": r["eval"].metrics,
                        "baselines": r["eval"].baselines,
                    }
                    for r in results
                ],
                indent=2,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
