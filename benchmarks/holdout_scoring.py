"""Benchmark: the challenger's holdout scoring (`evaluate`, as `ranker_model` calls it) on a built home.

Usage: .venv/bin/python benchmarks/holdout_scoring.py --home DIR [--work DIR] [--out eval.json]
           [--part evaluate|baselines] [--train]

Copies the home's warehouse into --work once (the home is never written), loads the newest registered
booster file of the home's MLflow artefacts, and times one `evaluate` (or, with `--part baselines`,
one `baselines.holdout_rankings`) in this process: CPU seconds (user + sys of every thread), wall,
load average and peak RSS. The compiled-booster cache lives in --work, filled by an untimed compile
first, so the figure is the scoring alone. `--out` writes the Evaluation JSON, so two runs (old code
and new code on PYTHONPATH) can be compared value by value. `--train` trains the ranker first and
evaluates it as `ranker_model` does (compiled inside the call): the peak RSS is then the step's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import duckdb


def _booster(home: Path):
    import lightgbm as lgb

    files = sorted((home / "mlartifacts").rglob("booster.txt"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit(f"no booster.txt under {home / 'mlartifacts'}")
    meta = files[-1].parent / "meta.json"
    industries = json.loads(meta.read_text())["industries"] if meta.exists() else None
    return lgb.Booster(model_file=str(files[-1])), industries


def _peak_gib() -> float:
    """The process's peak RSS (VmHWM) since it started or since the last reset."""
    status = Path("/proc/self/status").read_text().split("\n")
    return next(int(x.split()[1]) for x in status if x.startswith("VmHWM")) / 2**20


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--part", choices=("evaluate", "baselines"), default="evaluate")
    ap.add_argument("--train", action="store_true", help="train the ranker first (ranker_model)")
    args = ap.parse_args()
    from recsys_assets.ranking import baselines as bl
    from recsys_assets.ranking.dataset import load_dataset_summary
    from recsys_assets.ranking.evaluate import _predictor, evaluate

    home = Path(args.home)
    work = Path(args.work or home.parent / "holdout-bench")
    work.mkdir(parents=True, exist_ok=True)
    db = work / "warehouse.duckdb"
    if not db.exists():  # evaluate writes only temporary tables: one copy serves every run
        shutil.copyfile(home / "warehouse.duckdb", db)
    con = duckdb.connect(str(db))
    dataset = load_dataset_summary(con)
    if args.train:  # as ranker_model: train, then evaluate the trained ranker in the process
        import tempfile

        from recsys_assets.ranking.train import train_ranker

        booster, industries = train_ranker(con, dataset), None
        cache = Path(tempfile.mkdtemp(dir=work))  # compiled inside evaluate, as ranker_model does
        print(f"trained: peak RSS {_peak_gib():.2f} GiB (process)", flush=True)
    else:
        booster, industries = _booster(home)
        cache = work / "compiled"
        _predictor(con, booster, cache)  # compile into the cache first: the figures are the scoring
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current
    found = sorted((home / "sample").glob("*/ground_truth"))  # the generated sample's
    gt = found[0] if found else home / "sample" / "ground_truth"
    before, wall = os.times(), time.perf_counter()
    if args.part == "evaluate":
        ev = evaluate(
            con,
            booster,
            dataset,
            ground_truth_dir=gt if gt.is_dir() else None,
            industries=industries,
            compiled_cache=cache,
        )
    else:
        ranked = bl.holdout_rankings(con, dataset, "test", bl.DEPTH)
    after, wall = os.times(), time.perf_counter() - wall
    cpu = (after.user - before.user) + (after.system - before.system)
    print(
        f"{args.part}: {cpu:.2f} CPU-s, {wall:.2f} s wall, load {os.getloadavg()[0]:.1f}, "
        f"peak RSS {_peak_gib():.2f} GiB (process, {'training too' if args.train else 'the call'}),"
        f" recsys_assets from {bl.__file__}"
    )
    if args.out:
        doc = ev.to_json() if args.part == "evaluate" else {}
        if args.part == "baselines":
            doc = {
                n: f.astype({"restaurant_id": str, "product_id": str}).to_dict("list")
                for n, f in ranked.items()
            }
        Path(args.out).write_text(json.dumps(doc, allow_nan=True, default=str))
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
