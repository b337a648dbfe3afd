"""Run every benchmark and write benchmarks/REPORT.md (tables + plots in benchmarks/report_assets/).

Usage: .venv/bin/python benchmarks/run_all.py [--quick] [--work-dir DIR] [--report PATH]

Each benchmark runs as its own subprocess with `--report-json` and hands its figures back as JSON:

1. scale.py      full rebuilds small / medium / large (fresh homes; the budgets of the issue);
2. warehouse.py  DuckDB vs pandas on the medium and large warehouses those rebuilds made;
   learning_curve.py  NDCG@10 vs training queries on the datasets those rebuilds built;
3. ranking.py    ranker quality vs baselines and oracle, training time, memory (small, medium);
4. recommend.py  `recsys recommend` cold start and warm pyfunc latency from the small champion;
5. labeling.py   the LLM labeling engine vs the seed's loop (fake OpenAI server);
6. worlds.py     the ranker vs every baseline on several generating worlds x seeds (issue 13);
7. planning.py   labeling 1M restaurants with N workers under a provider's RPM/TPM limits.

`--quick` runs the small scale only (and a smaller labeling run, one seed per world): a few
minutes, for a smoke test.
A failed benchmark is reported as such in REPORT.md; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import machine  # noqa: E402

BENCH = ROOT / "benchmarks"


def run_script(name: str, args: list[str], work: Path) -> tuple[dict | list | None, dict]:
    """Run benchmarks/<name>.py with --report-json; returns (figures, run info)."""
    out_json = work / f"{name}.json"
    out_json.unlink(missing_ok=True)
    log = work / f"{name}.log"
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *args, "--report-json", str(out_json)]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(
            cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=False
        ).returncode
    seconds = time.perf_counter() - t
    text = log.read_text(errors="replace")
    print(text[-4000:], flush=True)
    print(f"== {name}: exit {rc} in {seconds:.0f} s", flush=True)
    figures = json.loads(out_json.read_text()) if out_json.exists() else None
    return figures, {"rc": rc, "seconds": seconds, "log": str(log), "tail": text[-1500:]}


# --- plots ---------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_warehouse(results: list[dict], assets: Path) -> str | None:
    if not results:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    labels = [f"{r['scale']}\n{r['order_lines'] / 1e6:.1f}M lines" for r in results]
    xs = range(len(results))
    w = 0.38
    ax.bar([x - w / 2 for x in xs], [r["duckdb_s"] for r in results], w, label="DuckDB SQL")
    ax.bar([x + w / 2 for x in xs], [r["pandas_s"] for r in results], w, label="pandas (in memory)")
    for x, r in zip(xs, results, strict=True):
        ax.annotate(
            f"{r['ratio']:.1f}x", (x + w / 2, r["pandas_s"]), ha="center", va="bottom", fontsize=9
        )
    ax.set_xticks(list(xs), labels)
    ax.set(ylabel="seconds (median)", title="industry_product_stats + industry_top_products")
    ax.legend()
    fig.tight_layout()
    fig.savefig(assets / "warehouse_duckdb_vs_pandas.png", dpi=110)
    plt.close(fig)
    return "warehouse_duckdb_vs_pandas.png"


def plot_ranking(results: list[dict], assets: Path) -> str | None:
    if not results:
        return None
    plt = _plt()
    names = ["model", "industry_popularity", "global_popularity", "oracle"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    w = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = [
            (r["metrics"] if n == "model" else r["baselines"].get(n, {})).get("ndcg_at_10", 0.0)
            for r in results
        ]
        ax.bar([j + (i - 1.5) * w for j in range(len(results))], vals, w, label=n)
    ax.set_xticks(range(len(results)), [r["scale"] for r in results])
    ax.set(ylabel="NDCG@10 (cold-start holdout)", title="Ranker vs baselines vs oracle")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(assets / "ranking_ndcg.png", dpi=110)
    plt.close(fig)
    return "ranking_ndcg.png"


# --- report --------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _failed(name: str, info: dict) -> str:
    return f"**{name} failed** (exit {info['rc']}, log `{info['log']}`):\n\n```\n{info['tail'].strip()}\n```\n"


def fmt_s(v: float) -> str:
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min ({v:.0f} s)"


def planning_section(run: tuple) -> str:
    """The planning table: 1M restaurants, N workers, a provider's limits (planning.py)."""
    plan, info = run
    out = ["## Planning: labeling 1M restaurants with N workers under a provider's limits\n"]
    if plan:
        sc, b = plan["scenario"], plan["bounds"]
        out.append(
            f"`benchmarks/planning.py`: the test server enforcing a provider's limits "
            f"({sc['rpm']:,} RPM, {sc['tpm']:,} TPM; 429 + Retry-After over them) at "
            f"{sc['latency_ms']:.0f} ms per call; each worker (a shard run) keeps "
            f"{sc['concurrency']} calls in flight, paced at the limits / N. A scaled-down run per "
            f"row, extrapolated to {sc['target']:,} restaurants (per-restaurant time, calls and "
            f"cost x the ratio; ~{sc['tokens_per_call']:.0f} tokens per call, {sc['model_prices']} "
            f"list prices). One worker makes {b['per_worker_calls_s']:.1f} calls/s; the provider "
            f"admits {b['provider_calls_s']:.1f} calls/s by arithmetic ({b['provider_limit']} "
            f"binds first) and {b.get('measured_provider_calls_s', float('nan')):.1f} calls/s "
            "measured (it reserves max_tokens against TPM, not only the tokens used): from "
            f"**{b.get('crossover_workers_measured', b['crossover_workers'])} workers** on, the "
            "provider limit, not the workers, bounds the run.\n"
        )
        rows = [
            [
                r["labeler"],
                r["workers"],
                r["rows"],
                f"{r['wall_s']:.1f} s",
                f"{r['calls_per_s']:.1f}",
                r["rejected_429"],
                f"{r['target_hours']:.1f} h",
                f"{r['target_calls']:,}",
                f"${r['target_cost_usd']:,.0f}",
                r["bound"],
            ]
            for r in plan["results"]
        ]
        out.append(
            _table(
                [
                    "labeler",
                    "N",
                    "rows run",
                    "wall",
                    "calls/s",
                    "429s",
                    "1M: wall",
                    "1M: calls",
                    "1M: cost",
                    "bound",
                ],
                rows,
            )
            + "\n"
        )
    if info and info["rc"]:
        out.append(_failed("planning.py", info))
    return "\n".join(out)


def _mem(r: dict, step: str) -> str:
    m = r.get("step_memory", {}).get(step)
    return f"{m['peak_gib']:.2f}" if m else "-"


def _step_table(res: list[dict], steps: list[str]) -> str:
    """Seconds and peak memory per step and scale, with the load the machine had meanwhile."""
    load = [
        "/".join(f"{x:.1f}" for x in r["load_avg_end"]) if r.get("load_avg_end") else "-"
        for r in res
    ]
    head = (
        "Seconds and peak memory (GiB, the process tree while the step ran; steps run one after "
        "another in one process, so it includes what earlier steps left resident) per step of at "
        "least 0.5 s (asset checks are their own steps). Load average (1/5/15 min) at the end of "
        "each rebuild: " + ", ".join(f"{r['scale']} {x}" for r, x in zip(res, load, strict=True))
    )
    rows = [
        [
            f"`{s}`",
            *[f"{r['steps'][s]:.1f}" if s in r["steps"] else "-" for r in res],
            *[_mem(r, s) for r in res],
        ]
        for s in steps
    ]
    cols = ["step", *[f"{r['scale']} s" for r in res], *[f"{r['scale']} GiB" for r in res]]
    return head + ":\n\n" + _table(cols, rows) + "\n"


def _growth_table(rows: list[dict]) -> str:
    """How each step grows scale to scale (log-log exponents) and its projection at 10x."""
    if not rows:
        return ""

    def f(v, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    scales = rows[0]["scales"]
    pairs = [f"{a} → {b}" for a, b in itertools.pairwise(scales)]
    head = (
        "How each step grows: the exponent b of `time ∝ restaurants^b` (and of its peak memory) "
        "between consecutive scales (10x more restaurants and order lines each; 1 = linear, "
        f"2 = quadratic), and the step's time at 10x the {scales[-1]} scale projected with its last "
        "exponent, so the top rows are what will dominate there. Exponents of steps under a few "
        "seconds, and of memory (a process baseline of ~0.5 GiB), understate the growth.\n"
    )
    table = _table(
        [
            "step",
            *[f"time b, {p}" for p in pairs],
            *[f"memory b, {p}" for p in pairs],
            f"projected at 10x {scales[-1]}",
            "share",
        ],
        [
            [
                f"`{r['step']}`",
                *[f(v, ".2f") for v in r["time_exponents"]],
                *[f(v, ".2f") for v in r["memory_exponents"]],
                fmt_s(r["projected_10x_s"]),
                f"{100 * r['projected_share']:.0f}%",
            ]
            for r in rows
        ],
    )
    return head + "\n" + table + "\n"


def _learning_curve_section(lc: dict | None, info: dict | None) -> str:
    """NDCG@10 vs training queries per scale: where more data stops helping."""
    out = ["## Ranking: learning curve (NDCG@10 vs training queries)\n"]
    if lc:
        out.append(
            "`benchmarks/learning_curve.py` on the datasets the rebuilds above built: the ranker "
            "trained as `ranker_model` trains it, on the first N training queries of `train.py`'s "
            "fixed md5 order (nested subsets; validation unchanged), NDCG@10 on the whole test "
            "split. `ranker_model` trains on at most `train.MAX_QUERIES['train']` queries; this "
            "table is the measured reason for that number.\n"
        )
        for r in lc["results"]:
            best = max((p["ndcg_at_10"] for p in r["points"]), default=float("nan"))
            out.append(f"{r['scale']}:\n")
            out.append(
                _table(
                    [
                        "train queries",
                        "candidate rows",
                        "trees",
                        "NDCG@10",
                        "vs best",
                        "train",
                        "load",
                    ],
                    [
                        [
                            f"{p['train_queries']:,}",
                            f"{p['train_rows']:,}",
                            p["best_iteration"],
                            f"**{p['ndcg_at_10']:.4f}**",
                            f"{p['ndcg_at_10'] - best:+.4f}",
                            fmt_s(p["train_s"]),
                            f"{p['load_avg'][0]:.1f}",
                        ]
                        for p in r["points"]
                    ],
                )
                + "\n"
            )
    if info and info["rc"]:
        out.append(_failed("learning_curve.py", info))
    return "\n".join(out)


def write_report(path: Path, quick: bool, mach: dict, load_end, runs: dict, assets: Path) -> None:
    """Write REPORT.md. Long because it is the report's text, section by section, in page order."""
    md: list[str] = []
    add = md.append
    add("# Benchmark report\n")
    add(
        f"Generated by `benchmarks/run_all.py{' --quick' if quick else ''}` (`make bench`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Every figure below was measured in that run.\n"
    )
    pk = mach["packages"]
    add(
        _table(
            ["machine", ""],
            [
                ["CPU", f"{mach['cpu']}, {mach['cores']} cores"],
                ["memory", f"{mach['memory_gib']} GiB"],
                ["OS", mach["os"]],
                ["Python", mach["python"]],
                ["packages", ", ".join(f"{k} {v}" for k, v in pk.items())],
                [
                    "load average (1/5/15 min) at start / end",
                    f"{'/'.join(f'{x:.1f}' for x in mach['load_avg_at_start'])} / {'/'.join(f'{x:.1f}' for x in load_end)}",
                ],
            ],
        )
    )
    add(
        "\nOther work ran on this machine during the run (a load average above the core count "
        "means the benchmarks shared the CPUs), so absolute timings are somewhat noisy; ratios measured "
        "in one process on the same input (DuckDB vs pandas, engine vs seed loop) are the most robust "
        "figures.\n"
    )

    scale, sinfo = runs.get("scale", (None, None))
    wh, winfo = runs.get("warehouse", (None, None))
    rk, rinfo = runs.get("ranking", (None, None))
    lc, lcinfo = runs.get("learning_curve", (None, None))
    rec, recinfo = runs.get("recommend", (None, None))
    lab, linfo = runs.get("labeling", (None, None))
    wo, woinfo = runs.get("worlds", (None, None))

    # headline
    add("## Headline figures\n")
    rows = []
    if scale:
        by = {r["scale"]: r for r in scale["results"]}
        for s in ("small", "medium", "large"):
            if s in by and by[s]["ok"]:
                r = by[s]
                rows.append(
                    [
                        (
                            f"full rebuild, {s} ({r.get('restaurants', 0):,} restaurants, "
                            f"{r.get('orders', 0):,} order lines)"
                        ),
                        f"{fmt_s(r['seconds'])}, peak {r['peak_rss_gib']:.2f} GiB (process tree)",
                    ]
                )
    if wh:
        for r in wh["results"]:
            rows.append(
                [
                    f"DuckDB vs pandas, industry tables, {r['scale']}",
                    (
                        f"pandas / DuckDB time = {r['ratio']:.1f}x ({r['duckdb_s']:.2f} s vs {r['pandas_s']:.2f} s; "
                        f"same top lists: {'yes' if r['same_top_lists'] else 'NO'})"
                    ),
                ]
            )
    if rk:
        for r in rk:
            b = r["baselines"]
            rows.append(
                [
                    f"ranker NDCG@10, {r['scale']} (industry popularity / oracle)",
                    (
                        f"{r['metrics']['ndcg_at_10']:.4f} ({b['industry_popularity']['ndcg_at_10']:.4f} / "
                        f"{b.get('oracle', {}).get('ndcg_at_10', float('nan')):.4f})"
                    ),
                ]
            )
    if rec:
        rows.append(
            [
                (
                    "`recsys recommend` cold start (new process, median of "
                    f"{len(rec['cold']['runs'])})"
                ),
                f"{rec['cold']['median_s']:.2f} s",
            ]
        )
        rows.append(
            [
                f"warm pyfunc predict per request ({rec['warm']['requests']} requests)",
                f"median {rec['warm']['median_ms']:.1f} ms, p95 {rec['warm']['p95_ms']:.1f} ms",
            ]
        )
    if lab:
        rows.append(
            [
                f"LLM labeling engine vs seed loop ({lab['latency_ms']:.0f} ms fake latency)",
                f"{lab['speedup']:.1f}x ({lab['engine_rows_per_s']:.1f} vs {lab['seed_rows_per_s']:.1f} rows/s)",
            ]
        )
    add(_table(["what", "figure"], rows) + "\n")

    # budgets
    add("## Budgets of issue 15 (large: ≈200,000 restaurants, ≈10M order lines; medium: 20,000)\n")
    if scale and scale.get("budgets"):
        add(
            _table(
                ["what", "scale", "measured", "budget", "met"],
                [
                    [
                        b["what"],
                        b["scale"],
                        f"{b['value']:.1f} {b['unit']}",
                        f"≤ {b['limit']} {b['unit']}",
                        "yes" if b["ok"] else "**NO**",
                    ]
                    for b in scale["budgets"]
                ],
            )
            + "\n"
        )
        add(
            "Full rebuild = `recsys materialize` as a subprocess in a fresh `RECSYS_HOME`, offline labeler, "
            "`RECSYS_DATA_DIR` unset (generating the sample is part of the rebuild: it happens in the first "
            "ingest step). Peak memory = RSS of the process and its children, sampled every 0.5 s. Step "
            "durations come from the run's `STEP_SUCCESS` events in the Dagster event log.\n"
        )
    elif sinfo:
        add(
            _failed("scale.py", sinfo)
            if sinfo["rc"]
            else "Not measured (`--quick` runs the small scale only).\n"
        )

    # scale
    add("## Scale curves: full rebuild vs number of restaurants\n")
    if scale:
        res = list(scale["results"])
        add(
            _table(
                ["scale", "restaurants", "order lines", "rebuild", "peak memory (GiB)", "ok"],
                [
                    [
                        r["scale"],
                        f"{r.get('restaurants', 0):,}",
                        f"{r.get('orders', 0):,}",
                        fmt_s(r["seconds"]),
                        f"{r['peak_rss_gib']:.2f}",
                        "yes" if r["ok"] else "**NO**",
                    ]
                    for r in res
                ],
            )
            + "\n"
        )
        steps = sorted(
            {s for r in res for s in r["steps"]},
            key=lambda s: -max(r["steps"].get(s, 0) for r in res),
        )
        steps = [s for s in steps if max(r["steps"].get(s, 0) for r in res) >= 0.5]
        add(_step_table(res, steps))
        add(_growth_table(scale.get("growth") or []))
        for f in scale.get("figures", []):
            add(f"![{f}](report_assets/{f})\n")
    if sinfo and sinfo["rc"]:
        add(_failed("scale.py", sinfo))

    # warehouse
    add("## Warehouse: DuckDB SQL vs pandas\n")
    if wh:
        add(
            "`build_industry_product_stats` + `build_industry_top_products` (what the two warehouse assets "
            "run) vs the same definitions in pandas (merge + groupby, on frames already loaded in memory; the "
            "load is shown apart). Same input warehouse in one run, medians of the repeats; the two must give "
            "identical top-50 lists.\n"
        )
        add(
            _table(
                [
                    "scale",
                    "restaurants",
                    "order lines",
                    "repeats",
                    "DuckDB",
                    "pandas",
                    "pandas / DuckDB",
                    "pandas load",
                    "ratio incl. load",
                    "same top lists",
                    "max score diff",
                ],
                [
                    [
                        r["scale"],
                        f"{r['restaurants']:,}",
                        f"{r['order_lines']:,}",
                        r["repeats"],
                        f"{r['duckdb_s']:.2f} s",
                        f"{r['pandas_s']:.2f} s",
                        f"**{r['ratio']:.1f}x**",
                        f"{r['pandas_load_s']:.2f} s",
                        f"{r['ratio_with_load']:.1f}x",
                        "yes" if r["same_top_lists"] else "**NO**",
                        f"{r['max_score_diff']:.1e}",
                    ]
                    for r in wh["results"]
                ],
            )
            + "\n"
        )
        f = plot_warehouse(wh["results"], assets)
        if f:
            add(f"![{f}](report_assets/{f})\n")
    if winfo and winfo["rc"]:
        add(_failed("warehouse.py", winfo))

    # ranking
    add("## Ranking: quality vs baselines and oracle, training time, memory\n")
    if rk:
        add(
            "`benchmarks/ranking.py`: offline labels, temporal cold-start holdout (restaurants that signed up "
            "last), metrics on their first 30 days of orders. Oracle = the generator's true purchase "
            "probabilities (an upper bound no model can see). Peak RSS is the benchmark process's "
            "high-water mark.\n"
        )
        add(
            _table(
                [
                    "scale",
                    "restaurants",
                    "order lines",
                    "train / test queries",
                    "NDCG@10 model",
                    "industry popularity",
                    "global popularity",
                    "oracle",
                    "dataset",
                    "train",
                    "evaluate",
                    "peak RSS",
                ],
                [
                    [
                        r["scale"],
                        f"{r['restaurants']:,}",
                        f"{r['order_lines']:,}",
                        f"{r['train_queries']:,} / {r['test_queries']:,}",
                        f"**{r['metrics']['ndcg_at_10']:.4f}**",
                        f"{r['baselines']['industry_popularity']['ndcg_at_10']:.4f}",
                        f"{r['baselines']['global_popularity']['ndcg_at_10']:.4f}",
                        f"{r['baselines'].get('oracle', {}).get('ndcg_at_10', float('nan')):.4f}",
                        f"{r['dataset_s']:.1f} s",
                        f"{r['train_s']:.1f} s",
                        f"{r['evaluate_s']:.1f} s",
                        f"{r['peak_rss_mb']:.0f} MB",
                    ]
                    for r in rk
                ],
            )
            + "\n"
        )
        other = sorted({k for r in rk for k in r["metrics"] if k != "ndcg_at_10"})
        if other:
            add("Other metrics of the model (baseline industry popularity in brackets):\n")
            add(
                _table(
                    ["metric", *[r["scale"] for r in rk]],
                    [
                        [
                            m,
                            *[
                                f"{r['metrics'].get(m, float('nan')):.4f} "
                                f"({r['baselines']['industry_popularity'].get(m, float('nan')):.4f})"
                                for r in rk
                            ],
                        ]
                        for m in other
                    ],
                )
                + "\n"
            )
        f = plot_ranking(rk, assets)
        if f:
            add(f"![{f}](report_assets/{f})\n")
    if rinfo and rinfo["rc"]:
        add(_failed("ranking.py", rinfo))

    # worlds
    add("## Ranking on several generating worlds (worlds x seeds)\n")
    if wo:
        add(
            f"`benchmarks/worlds.py`: for each world of `recsys_assets/data/worlds.yaml` and seed, a "
            f"{wo['scale']}-scale sample, {wo['labels']} labels, the same dataset, training and "
            "`evaluate()` as the pipeline. Every baseline the evaluation reports is a column; the "
            "ratio columns are model / baseline NDCG@10 with a paired bootstrap 95 % CI over the "
            "test restaurants. *Ceiling*: ranking by the generator's expected purchases given the "
            "true industry, size and listed dishes (not the realized orders, nor hidden dishes or "
            "brand loyalty); *gap share* = (model - industry popularity) / (ceiling - industry "
            "popularity). The project's defaults were tuned on `default` only; `random` draws "
            "every knob from the seed.\n"
        )
        add(wo["table_md"] + "\n")
    if woinfo and woinfo["rc"]:
        add(_failed("worlds.py", woinfo))
    add(_learning_curve_section(lc, lcinfo))

    # recommend
    add("## Recommend latency (champion of a small-scale build)\n")
    if rec:
        c, w = rec["cold"], rec["warm"]
        add(
            _table(
                ["what", "figure"],
                [
                    [
                        "`recsys recommend --name … --menu …`, first call after the rebuild",
                        f"{c['first_s']:.2f} s",
                    ],
                    [
                        f"same, new process each time, median of {len(c['runs'])}",
                        (f"**{c['median_s']:.2f} s** (max {c['max_s']:.2f} s)"),
                    ],
                    ['`mlflow.pyfunc.load_model("models:/…@champion")`', f"{w['load_s']:.2f} s"],
                    [
                        f"warm pyfunc `predict`, one restaurant, k=10, {w['requests']} requests",
                        f"median **{w['median_ms']:.1f} ms**, p95 {w['p95_ms']:.1f} ms, max {w['max_ms']:.1f} ms",
                    ],
                ],
            )
            + "\n"
        )
    if recinfo and recinfo["rc"]:
        add(_failed("recommend.py", recinfo))

    # labeling
    add("## Labeling: the LLM engine vs the seed's notebook loop\n")
    if lab:
        add(
            f"`benchmarks/labeling.py` against the fake OpenAI server ({lab['latency_ms']:.0f} ms per call), "
            f"{lab['rows']} restaurants, real ChatOpenAI client and SQLite ledger. The fake labels by keyword, "
            "so accuracy here checks the plumbing, not a model.\n"
        )
        add(_table(["what", "figure"], [[a, b] for a, b in lab["lines"]]) + "\n")
    if linfo and linfo["rc"]:
        add(_failed("labeling.py", linfo))
    if lab and "cost_modes_md" in lab:
        add("## Labeling: cost per 1,000 restaurants, online vs Batch API vs cascade\n")
        add(lab["cost_modes_md"])
    if lab and "real_models_md" in lab:
        add(
            "## Labeling: cascade accuracy per model and per confidence band on the real-world set\n"
        )
        add(
            "The gold set is `recsys_assets/data/real_world_restaurants.csv` (170 hand-written "
            "real restaurants; the lexicon was tuned on its `tune` rows, so the offline figures are "
            "optimistic there). Model answers are real, recorded once from llama.cpp's `llama-server` "
            "on this CPU in `benchmarks/data/real_llm_answers.csv` (too slow to re-run on every "
            "`make bench`; see `benchmarks/labeling.py`) and scored with `recsys label eval`'s code. "
            "The cascade sends a model only the rows it has answers for; rows at or above that "
            "offline margin are the lexicon's in every column. *Routed* applies the model's rule from "
            "`recsys_assets/data/cascade_routing.yaml`; *held-out* refits that rule on 4/5 of the "
            "rows and scores the other fifth (5-fold cross-validation, 5 shuffles). How the answers "
            "were recorded (models, server flags, rows): `benchmarks/data/README.md`.\n"
        )
        add(lab["real_models_md"])

    add(planning_section(runs.get("planning", (None, None))))

    add("## Reproduce\n")
    add(
        "```bash\nmake bench                               # everything (about "
        f"{sum(i['seconds'] for _, i in runs.values()) / 60:.0f} min here)\n"
        ".venv/bin/python benchmarks/run_all.py --quick   # small scale only\n"
        ".venv/bin/python benchmarks/scale.py --scales large\n```\n"
    )
    add(
        "Run times of the benchmark scripts in this report: "
        + ", ".join(f"{n} {i['seconds'] / 60:.1f} min" for n, (_, i) in runs.items())
        + ".\n"
    )
    path.write_text("\n".join(md))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small scale only")
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--report", default=str(BENCH / "REPORT.md"))
    ap.add_argument("--only", nargs="*", default=None, help="run only these benchmarks (names)")
    args = ap.parse_args(argv)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench-"))
    work.mkdir(parents=True, exist_ok=True)
    assets = BENCH / "report_assets"
    assets.mkdir(parents=True, exist_ok=True)
    mach = machine()
    scales = ["small"] if args.quick else ["small", "medium", "large"]
    homes = work / "homes"

    plan = {
        "scale": ["--scales", *scales, "--work-dir", str(homes), "--assets-dir", str(assets)],
        "warehouse": [
            "--scales",
            *(["small"] if args.quick else ["medium", "large"]),
            "--warehouse",
            *[f"{s}={homes / f'home-{s}' / 'warehouse.duckdb'}" for s in scales],
            "--work-dir",
            str(work / "warehouse"),
        ],
        "learning_curve": [
            "--warehouse",
            *[
                f"{s}={homes / f'home-{s}' / 'warehouse.duckdb'}"
                for s in (["small"] if args.quick else ["medium", "large"])
            ],
        ],
        "ranking": [
            "--scales",
            *(["small"] if args.quick else ["small", "medium"]),
            "--work-dir",
            str(work / "ranking"),
        ],
        "recommend": ["--home", str(homes / "home-small")],
        "labeling": ["--rows", "300", "--baseline-rows", "60"] if args.quick else [],
        "worlds": [*(["--seeds", "1"] if args.quick else []), "--work-dir", str(work / "worlds")],
        "planning": ["--rows-per-worker", "50", "--max-rows", "300"] if args.quick else [],
    }
    runs: dict = {}
    for name, planned_args in plan.items():
        if args.only and name not in args.only:
            continue
        script_args = planned_args
        if name == "recommend" and not (homes / "home-small" / "mlflow.db").exists():
            script_args = []  # no small home from scale.py: recommend.py builds its own
        runs[name] = run_script(name, script_args, work)
    load_end = os.getloadavg()
    write_report(Path(args.report), args.quick, mach, load_end, runs, assets)
    print(f"wrote {args.report}")
    failed = [n for n, (_, i) in runs.items() if i["rc"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
