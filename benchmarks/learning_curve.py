"""Benchmark: ranker quality vs the number of training queries (the learning curve).

Usage: .venv/bin/python benchmarks/learning_curve.py --warehouse medium=PATH [large=PATH ...]
           [--queries 1000 2000 4000 ...] [--report-json PATH]

Each PATH is a warehouse with a built ranking dataset (a `scale.py` home's warehouse.duckdb, opened
read-only). For each size N the ranker trains exactly as `ranker_model` does but on the first N
training queries (with a positive) of the fixed md5 order `train.py` uses, so the subsets are
nested; validation (early stopping) is the step's own; NDCG@10 is measured on the whole cold-start
test split. "all" trains on every training query. Each size is compared with the previous one on
the same test restaurants: the gain in mean NDCG@10 with a paired bootstrap 95 % CI (per-query
NDCG@10 resampled in pairs), so the table shows where more data stops helping beyond noise, which is
what `train.MAX_QUERIES` is set from.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, print_table, write_json  # noqa: E402

DEFAULT_QUERIES = ["1000", "2000", "4000", "8000", "16000", "32000", "64000", "all"]


def curve(warehouse: Path, sizes: list[str]) -> list[dict]:
    """One training per size on `warehouse`; NDCG@10 on the test split and the training time."""
    import duckdb

    from recsys_assets.ranking import train
    from recsys_assets.ranking.dataset import load_dataset_summary
    from recsys_assets.ranking.evaluate import paired_bootstrap_difference, score_with_booster

    con = duckdb.connect(str(warehouse), read_only=True)
    out: list[dict] = []
    previous = None  # per-query NDCG@10 of the previous size
    try:
        dataset = load_dataset_summary(con)
        available = con.execute(
            "SELECT count(DISTINCT restaurant_id) FROM rk_candidates "
            "WHERE split = 'train' AND relevance > 0"
        ).fetchall()[0][0]
        default = train.MAX_QUERIES.get("train")
        for size in sizes:
            n = None if size == "all" else int(size)
            if n is not None and n >= available:
                continue  # the same model as "all"
            train.MAX_QUERIES["train"] = n
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                trained = train.train_ranker(con, dataset)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            finally:
                train.MAX_QUERIES["train"] = default
            t1 = time.perf_counter()
            summary = score_with_booster(con, trained.booster, "test", dataset.industries)
            per_query = summary.per_query.set_index("query_id")["ndcg_at_10"]
            gain = {"difference": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
            if previous is not None:
                gain = paired_bootstrap_difference(
                    per_query.to_numpy(), previous.reindex(per_query.index).to_numpy()
                )
            previous = per_query
            row = {
                "train_queries": trained.counts["fitted_train_queries"],
                "train_rows": trained.counts["fitted_train_rows"],
                "valid_queries": trained.counts["fitted_valid_queries"],
                "best_iteration": int(trained.best_iteration),
                "train_s": seconds,
                "evaluate_s": time.perf_counter() - t1,
                "ndcg_at_10": float(summary.metrics["ndcg_at_10"]),
                "recall_at_20": float(summary.metrics.get("recall_at_20", float("nan"))),
                # vs the previous (smaller) size, same test queries: gain and its paired 95 % CI
                "gain_vs_previous": gain["difference"],
                "gain_ci": [gain["ci_low"], gain["ci_high"]],
                "train_cpu_s": cpu,
                "load_avg": os.getloadavg(),
                # the process's peak RSS so far (sizes run in increasing order: this size's peak)
                "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            }
            print(
                f"  {row['train_queries']:>7,} queries: NDCG@10 {row['ndcg_at_10']:.4f}, "
                f"{row['best_iteration']} trees, train {seconds:.1f} s, "
                f"gain {gain['difference']:+.4f} ({gain['ci_low']:+.4f}..{gain['ci_high']:+.4f}), "
                f"train {cpu:.0f} CPU-s, peak RSS {row['max_rss_gib']:.2f} GiB",
                flush=True,
            )
            out.append(row)
    finally:
        con.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", nargs="+", required=True, help="scale=path/to/warehouse.duckdb")
    ap.add_argument("--queries", nargs="+", default=DEFAULT_QUERIES)
    ap.add_argument("--report-json", default=None)
    args = ap.parse_args(argv)
    results = []
    for spec in args.warehouse:
        scale, _, path = spec.partition("=")
        if not Path(path).exists():
            print(f"{scale}: no warehouse at {path}, skipped", flush=True)
            continue
        print(f"learning curve, {scale} ({path})", flush=True)
        results.append({"scale": scale, "points": curve(Path(path), args.queries)})
    for r in results:
        best = max((p["ndcg_at_10"] for p in r["points"]), default=float("nan"))
        print(f"\n{r['scale']}: NDCG@10 vs training queries")
        print_table(
            [
                "train queries",
                "rows",
                "trees",
                "NDCG@10",
                "gain vs previous (95% CI)",
                "vs best",
                "train s",
                "load",
            ],
            [
                [
                    f"{p['train_queries']:,}",
                    f"{p['train_rows']:,}",
                    p["best_iteration"],
                    f"{p['ndcg_at_10']:.4f}",
                    f"{p['gain_vs_previous']:+.4f} ({p['gain_ci'][0]:+.4f}..{p['gain_ci'][1]:+.4f})",
                    f"{p['ndcg_at_10'] - best:+.4f}",
                    f"{p['train_s']:.1f}",
                    f"{p['load_avg'][0]:.1f}",
                ]
                for p in r["points"]
            ],
        )
    write_json(args.report_json, {"machine": machine(), "results": results})
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
