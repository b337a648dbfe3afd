"""The ranker against every baseline on several generating worlds and seeds (issue 13).

Usage: .venv/bin/python benchmarks/worlds.py [--worlds default recipe menu_items long_tail
           house_menus random]
           [--seeds 1 2] [--scale small] [--n-restaurants N] [--labels offline|truth]
           [--report-json PATH] [--variant NAME='{"config": {...}, "params": {...}}' ...]
           [--lgb-seeds 42 43 44]

Why: a model developed against one data-generating process can learn that process instead of the
problem. For each (world, seed) this generates the sample (recsys_assets/data/worlds.yaml), ingests
it, labels industries with the offline labeler, builds the cold-start dataset, trains and evaluates
with the project's own code (dataset.py, train.py, evaluate.py), exactly as benchmarks/ranking.py
does. It prints one table: NDCG@10 of the model and of every baseline `evaluate()` reports (read
generically from the Evaluation, so new baselines appear without a change here), the paired
bootstrap 95 % CI of model / baseline over the test restaurants, and the share of the gap between
industry popularity and the menu-visible ceiling (the generator's expected purchases given the true
industry and the listed dishes) that the model covers. Exit 0 unless a run fails.

With two or more `--variant`s it compares configurations instead: each variant overrides
RankingConfig fields ("config") and/or LightGBM parameters ("params"); every variant is built,
trained and scored on the same sample, and the table gives each one's model NDCG@10 / the first
variant's on the same test restaurants (paired bootstrap 95 % CI), candidate rows per query,
candidate recall, best iteration and the fit's CPU seconds. `--lgb-seeds` fits each variant once
per LightGBM seed and compares the per-query NDCG@10 averaged over those models.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.common import write_json  # noqa: E402

DEFAULT_WORLDS = ("default", "recipe", "menu_items", "long_tail", "house_menus", "random")
DEFAULT_SEEDS = (1, 2)
BOOTSTRAP = 2000
NOT_BASELINES = ("oracle",)  # upper bounds, not something we could ship
METRIC = "ndcg_at_10"


def paired_ratio_ci(
    model: np.ndarray, baseline: np.ndarray, n_boot: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float, float]:
    """mean(model) / mean(baseline) and its paired bootstrap 95 % CI (queries resampled together)."""
    n = len(model)
    if n == 0 or baseline.mean() <= 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    ratios = model[idx].mean(axis=1) / np.maximum(baseline[idx].mean(axis=1), 1e-12)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(model.mean() / baseline.mean()), float(lo), float(hi)


class _SummaryRecorder:
    """Records every MetricSummary `evaluate()` computes, so each reported method's per-query
    figures can be paired with the model's without knowing the baselines' names in advance."""

    def __init__(self) -> None:
        self.summaries: list[Any] = []

    def wrap(self, fn: Callable) -> Callable:
        def recorded(*args, **kwargs):
            out = fn(*args, **kwargs)
            self.summaries.append(out[0])  # summarize_frame: (MetricSummary, NDCG curve)
            return out

        return recorded

    def per_query(self, metrics: dict) -> pd.Series | None:
        """query -> NDCG@10 of the recorded summary whose averages are `metrics`."""
        for s in self.summaries:
            if s.metrics is metrics:
                return s.per_query.set_index("query_id")[METRIC]
        for s in self.summaries:  # the Evaluation may hold copies of the dicts
            if s.metrics == metrics:
                return s.per_query.set_index("query_id")[METRIC]
        return None


def _evaluate_recorded(con, trained, dset, gt) -> tuple[Any, _SummaryRecorder]:
    from recsys_assets.ranking import evaluate as ev_mod

    rec = _SummaryRecorder()
    original = ev_mod.summarize_frame
    ev_mod.summarize_frame = rec.wrap(original)
    try:
        ev = ev_mod.evaluate(con, trained, dset, ground_truth_dir=gt)
    finally:
        ev_mod.summarize_frame = original
    return ev, rec


def _ceiling(con, gt: Path) -> pd.Series:
    """Per-query NDCG@10 of the menu-visible ceiling on the test split."""
    from recsys_assets.ranking.dataset import load_queries, load_truth
    from recsys_assets.ranking.metrics import rankings_from_frame, summarize, truth_from_frame
    from recsys_assets.sample_worlds import ceiling_scores

    queries = load_queries(con, "test")["restaurant_id"].astype(str).tolist()
    truth = truth_from_frame(load_truth(con, "test"))
    ranked = rankings_from_frame(ceiling_scores(gt, queries))
    return summarize(ranked, truth, queries).per_query.set_index("query_id")[METRIC]


def _ratios(ev, rec: _SummaryRecorder, model_q: pd.Series | None) -> dict[str, tuple]:
    """model / baseline (ratio, CI low, CI high) per servable baseline: the evaluation's own
    figures when it computes them (`Evaluation.ratio_ci`, what the promotion gate reads), else a
    paired bootstrap over the per-query NDCG@10 recorded while it ran."""
    own = getattr(ev, "ratio_ci", None) or {}
    out: dict[str, tuple] = {}
    for name, metrics in ev.baselines.items():
        if name in NOT_BASELINES:
            continue
        if name in own:
            ci = own[name]
            out[name] = (ci["ratio"], ci["ci_low"], ci["ci_high"])
            continue
        base_q = rec.per_query(metrics)
        if model_q is None or base_q is None:
            print(f"warning: no per-query figures for {name}: its CI is left out", flush=True)
            continue
        # a query a method left unranked scores 0 there, as in the evaluation
        b = base_q.reindex(model_q.index).fillna(0.0)
        out[name] = paired_ratio_ci(model_q.to_numpy(), b.to_numpy())
    return out


def run_one(work: Path, world: str, seed: int, scale: str, n_r: int | None, labels: str) -> dict:
    """One (world, seed): sample, warehouse, dataset, train, evaluate, ratios and the ceiling."""
    from benchmarks.ranking import prepare_warehouse
    from recsys_assets.ranking.dataset import build_ranking_dataset
    from recsys_assets.ranking.train import train_ranker
    from recsys_assets.sample_worlds import resolve_world

    t0 = time.perf_counter()
    con, gt = prepare_warehouse(work, scale, seed, n_r, labels, world=world)
    try:
        dset = build_ranking_dataset(con)
        trained = train_ranker(con, dset)
        ev, rec = _evaluate_recorded(con, trained, dset, gt)
        model_q = rec.per_query(ev.metrics)
        ceiling_q = _ceiling(con, gt)
    finally:
        con.close()
    res: dict = {
        "world": world,
        "seed": seed,
        "tuned_on": resolve_world(world, seed).tuned_on,
        "test_queries": ev.queries_evaluated,
        "model": ev.metrics[METRIC],
        "baselines": {n: m[METRIC] for n, m in ev.baselines.items()},
        "ceiling": float(ceiling_q.mean()),
        "ratios": {},
        "seconds": 0.0,
    }
    res["ratios"] = _ratios(ev, rec, model_q)
    servable = [n for n in res["baselines"] if n not in NOT_BASELINES]
    res["strongest"] = max(servable, key=lambda n: res["baselines"][n]) if servable else None
    ind = res["baselines"].get("industry_popularity", float("nan"))
    gap = res["ceiling"] - ind
    res["gap_share"] = (res["model"] - ind) / gap if gap > 1e-9 else float("nan")
    res["seconds"] = time.perf_counter() - t0
    return res


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads (LightGBM fits on several)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def parse_variant(spec: str) -> tuple[str, dict]:
    """NAME=JSON with optional "config" (RankingConfig fields) and "params" (LightGBM) objects."""
    name, _, body = spec.partition("=")
    v = json.loads(body or "{}")
    if not name or not isinstance(v, dict) or set(v) - {"config", "params"}:
        raise argparse.ArgumentTypeError(f'expected NAME={{"config": ..., "params": ...}}: {spec}')
    return name, v


def seeded_params(params: dict | None, lgb_seeds: list[int] | None) -> list[dict | None]:
    """The LightGBM parameters of one fit per seed in `lgb_seeds` (each overriding "seed"), or
    the variant's own parameters once when no seeds are given."""
    if not lgb_seeds:
        return [params]
    return [{**(params or {}), "seed": s} for s in lgb_seeds]


def run_variants(
    work: Path, world: str, seed: int, scale: str, n_r, labels, variants, lgb_seeds=None
) -> dict:
    """One (world, seed), every variant on the same sample: per variant its model's per-query
    NDCG@10 on the test cohort, candidate rows per query and recall, best iteration, fit CPU s.
    The dataset is rebuilt only when a variant's config differs from the previous one's.
    With `lgb_seeds` each variant is fitted once per LightGBM seed on the same dataset and its
    per-query NDCG@10 is the mean over those models (best iteration and fit CPU s too): one
    LightGBM seed's luck on a small world is as large as the effects judged (REPORT.md)."""
    from benchmarks.ranking import prepare_warehouse
    from recsys_assets.ranking.dataset import (
        RankingConfig,
        build_ranking_dataset,
        load_queries,
        load_truth,
    )
    from recsys_assets.ranking.evaluate import model_rankings
    from recsys_assets.ranking.metrics import rankings_from_frame, summarize, truth_from_frame
    from recsys_assets.ranking.train import train_ranker

    con, _ = prepare_warehouse(work, scale, seed, n_r, labels, world=world)
    out: dict = {"world": world, "seed": seed, "variants": {}}
    built: dict | None = None
    try:
        for name, v in variants:
            cfg = v.get("config", {})
            if cfg != built:
                dset, built = build_ranking_dataset(con, config=RankingConfig(**cfg)), cfg
            queries = load_queries(con, "test")["restaurant_id"].astype(str).tolist()
            truth = truth_from_frame(load_truth(con, "test"))
            fits = []
            for params in seeded_params(v.get("params"), lgb_seeds):
                cpu = _cpu_seconds()
                trained = train_ranker(con, dset, params)
                cpu = _cpu_seconds() - cpu
                ranked = rankings_from_frame(model_rankings(con, trained.booster, "test"))
                pq = summarize(ranked, truth, queries).per_query.set_index("query_id")[METRIC]
                fits.append((pq.reindex(queries).fillna(0.0).to_numpy(), trained, cpu))
            out["variants"][name] = {
                "per_query": np.mean([f[0] for f in fits], axis=0),
                "rows_per_query": dset.counts["test_candidate_rows"] / max(len(queries), 1),
                "recall": dset.candidate_recall.get("test", float("nan")),
                "best_iteration": float(np.mean([f[1].best_iteration for f in fits])),
                "fit_cpu_s": float(np.mean([f[2] for f in fits])),
                "fit_s": float(np.mean([f[1].train_seconds for f in fits])),
            }
    finally:
        con.close()
    ref = out["variants"][variants[0][0]]["per_query"]
    for r in out["variants"].values():
        r["ratio_ci"] = paired_ratio_ci(r.pop("per_query"), ref)
    return out


def variants_markdown(results: list[dict]) -> str:
    """One row per (variant, world, seed): new / reference with its CI and the cost figures, then
    one line per variant over every run (mean and lowest ratio, runs with the CI below 1)."""
    head = [
        "variant",
        "world",
        "seed",
        "new / ref (95 % CI)",
        "rows/query",
        "recall",
        "best it",
        "fit CPU s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = list(results[0]["variants"]) if results else []
    for n in names:
        for r in results:
            v = r["variants"][n]
            lines.append(
                f"| {n} | {r['world']} | {r['seed']} | {_ci(v['ratio_ci'])} | "
                f"{v['rows_per_query']:.1f} | {v['recall']:.3f} | {v['best_iteration']:.0f} | "
                f"{v['fit_cpu_s']:.1f} |"
            )
    head = [
        "variant",
        "mean ratio",
        "lowest ratio",
        "runs with CI below 1",
        "rows/query",
        "fit CPU s",
    ]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        vs = [r["variants"][n] for r in results]
        ratios = [v["ratio_ci"][0] for v in vs]
        below = sum(1 for v in vs if v["ratio_ci"][2] < 1.0)
        lines.append(
            f"| {n} | {np.mean(ratios):.3f} | {np.min(ratios):.3f} | {below} / {len(vs)} | "
            f"{np.mean([v['rows_per_query'] for v in vs]):.1f} | "
            f"{np.mean([v['fit_cpu_s'] for v in vs]):.1f} |"
        )
    return "\n".join(lines)


def _baseline_names(results: list[dict]) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [n for n in r["baselines"] if n not in names and n not in NOT_BASELINES]
    return sorted(names, key=lambda n: (n != "industry_popularity", names.index(n)))


def _ci(t) -> str:
    ratio, lo, hi = t
    return "-" if np.isnan(ratio) else f"{ratio:.3f} ({lo:.3f} to {hi:.3f})"


def markdown(results: list[dict]) -> str:
    """The worlds x seeds table, then one line per world (mean over its seeds)."""
    names = _baseline_names(results)
    head = [
        "world",
        "seed",
        "test queries",
        "NDCG@10 model",
        *names,
        "ceiling",
        *[f"model / {n} (95 % CI)" for n in names],
        "gap share",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        world = r["world"] + (" (tuned on)" if r["tuned_on"] else "")
        cells = [
            world,
            str(r["seed"]),
            str(r["test_queries"]),
            f"**{r['model']:.4f}**",
            *[f"{r['baselines'].get(n, float('nan')):.4f}" for n in names],
            f"{r['ceiling']:.4f}",
            *[_ci(r["ratios"].get(n, (float("nan"),) * 3)) for n in names],
            "-" if np.isnan(r["gap_share"]) else f"{r['gap_share']:.0%}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _summary(results)]
    return "\n".join(lines)


def _summary(results: list[dict]) -> str:
    """Per world: mean ratio to industry popularity and to the strongest baseline, and in how many
    seeds the CI against the strongest baseline lies above 1."""
    head = [
        "world",
        "seeds",
        "model / industry popularity (mean)",
        "model / strongest baseline (mean)",
        "seeds with CI above 1 vs strongest",
        "gap share (mean)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for world in dict.fromkeys(r["world"] for r in results):
        rs = [r for r in results if r["world"] == world]
        ind = [r["ratios"].get("industry_popularity", (float("nan"),) * 3)[0] for r in rs]
        strongest = [r["ratios"].get(r["strongest"], (np.nan,) * 3) for r in rs]
        above = sum(1 for s in strongest if s[1] > 1.0)
        tag = " (tuned on)" if rs[0]["tuned_on"] else ""
        lines.append(
            f"| {world}{tag} | {len(rs)} | {np.nanmean(ind):.3f} | "
            f"{np.nanmean([s[0] for s in strongest]):.3f} | {above} / {len(rs)} | "
            f"{np.nanmean([r['gap_share'] for r in rs]):.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", nargs="+", default=list(DEFAULT_WORLDS))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    ap.add_argument("--scale", default="small")
    ap.add_argument("--n-restaurants", type=int, default=None)
    ap.add_argument("--labels", choices=["offline", "truth"], default="offline")
    ap.add_argument("--work-dir", default=None, help="cache dir for samples (default: a temp dir)")
    ap.add_argument("--report-json", default=None, help="also write the figures as JSON here")
    ap.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        help='NAME={"config": {...}, "params": {...}}; two or more: compare them to the first',
    )
    ap.add_argument(
        "--lgb-seeds",
        nargs="+",
        type=int,
        default=None,
        help="with --variant: fit each variant once per LightGBM seed, average per query",
    )
    args = ap.parse_args(argv)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="worlds-"))
    work.mkdir(parents=True, exist_ok=True)
    if len(args.variant) >= 2:
        return _compare(work, args)
    results = []
    for world in args.worlds:
        for seed in args.seeds:
            r = run_one(work, world, seed, args.scale, args.n_restaurants, args.labels)
            results.append(r)
            print(
                f"{world} seed {seed}: model {r['model']:.4f}, "
                + ", ".join(f"{n} {v:.4f}" for n, v in r["baselines"].items())
                + f", ceiling {r['ceiling']:.4f} ({r['seconds']:.0f} s)",
                flush=True,
            )
    table = markdown(results)
    print("\n" + table)
    write_json(
        args.report_json,
        {"scale": args.scale, "labels": args.labels, "results": results, "table_md": table},
    )
    return 0


def _compare(work: Path, args) -> int:
    results = []
    for world in args.worlds:
        for seed in args.seeds:
            r = run_variants(
                work,
                world,
                seed,
                args.scale,
                args.n_restaurants,
                args.labels,
                args.variant,
                args.lgb_seeds,
            )
            results.append(r)
            write_json(args.report_json, {"scale": args.scale, "results": results})  # so far
            print(
                f"{world} seed {seed}: "
                + ", ".join(f"{n} {v['ratio_ci'][0]:.3f}" for n, v in r["variants"].items()),
                flush=True,
            )
    table = variants_markdown(results)
    print("\n" + table)
    write_json(args.report_json, {"scale": args.scale, "results": results, "table_md": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
