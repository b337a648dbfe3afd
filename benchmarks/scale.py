"""Benchmark: full rebuild (`recsys materialize`) time and peak memory vs scale.

Usage: .venv/bin/python benchmarks/scale.py [--scales small medium large] [--work-dir DIR]
           [--assets-dir benchmarks/report_assets] [--report-json PATH]

Each scale is a fresh RECSYS_HOME, offline labeler, RECSYS_DATA_DIR unset (the sample is generated
inside the home, and that is part of the rebuild), `recsys materialize` run as a subprocess. Peak
memory is the whole process tree's RSS sampled every 0.5 s; per-asset seconds come from the run's
STEP_SUCCESS events in the Dagster event log. Budgets (from the issue) are checked and printed;
the script always exits 0 when the rebuilds themselves succeed (1 if one fails).
The homes are kept under --work-dir so other benchmarks can reuse their warehouse and champion.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import full_rebuild, machine, print_table, write_json  # noqa: E402

NOMINAL_RESTAURANTS = {"small": 2_000, "medium": 20_000, "large": 200_000}
# (what, scale, limit, unit, how to read it from a result)
BUDGETS = [
    # The goals of issue 15 (2 cores): what `make bench` must show.
    ("full rebuild", "large", 5 * 60, "s", lambda r: r["seconds"]),
    ("peak memory (process tree)", "large", 6.0, "GiB", lambda r: r["peak_rss_gib"]),
    ("recommendations", "large", 30, "s", lambda r: r["steps"].get("recommendations", math.nan)),
    (
        # The challenger is scored once, inside ranker_model (its evaluate_seconds metadata).
        "holdout scoring in ranker_model + ranker_evaluation + champion_model",
        "large",
        20,
        "s",
        lambda r: (
            (r.get("evaluate_seconds") or math.nan)
            + r["steps"].get("ranker_evaluation", math.nan)
            + r["steps"].get("champion_model", math.nan)
        ),
    ),
    (
        "industry_product_stats + industry_top_products",
        "large",
        30,
        "s",
        lambda r: (
            r["steps"].get("industry_product_stats", math.nan)
            + r["steps"].get("industry_top_products", math.nan)
        ),
    ),
    ("full rebuild", "medium", 30, "s", lambda r: r["seconds"]),
]


def warehouse_counts(home: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("restaurants", "orders")
        }
    finally:
        con.close()


def plot(results: list[dict], assets_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assets_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in results if r["ok"]]
    if not ok:
        return []
    x = [r["restaurants"] for r in ok]
    files = []
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(x, [r["seconds"] / 60 for r in ok], "o-")
    ax[0].set(
        xscale="log",
        yscale="log",
        xlabel="restaurants",
        ylabel="full rebuild (min)",
        title="Full rebuild time",
    )
    ax[1].plot(x, [r["peak_rss_gib"] for r in ok], "o-", color="tab:red")
    ax[1].set(
        xscale="log",
        xlabel="restaurants",
        ylabel="peak RSS, process tree (GiB)",
        title="Peak memory",
    )
    for a, r in zip([ax[0]] * len(ok), ok, strict=True):
        a.annotate(
            r["scale"],
            (r["restaurants"], r["seconds"] / 60),
            textcoords="offset points",
            xytext=(4, -10),
        )
    for axis in ax:
        axis.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = assets_dir / "scale_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path.name)

    # Per-asset breakdown, stacked, per scale.
    steps = list(ok[-1]["steps"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bottom = [0.0] * len(ok)
    for step in sorted(steps, key=lambda s: -ok[-1]["steps"][s])[:10]:
        vals = [r["steps"].get(step, 0.0) for r in ok]
        ax.bar([r["scale"] for r in ok], vals, bottom=bottom, label=step)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set(
        ylabel="seconds (step duration)",
        title="Where the rebuild time goes (10 longest steps at the largest scale)",
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = assets_dir / "scale_steps.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path.name)
    return files


def check_budgets(results: list[dict]) -> list[dict]:
    by_scale = {r["scale"]: r for r in results if r["ok"]}
    out = []
    for what, scale, limit, unit, get in BUDGETS:
        if scale not in by_scale:
            continue
        value = get(by_scale[scale])
        out.append(
            {
                "what": what,
                "scale": scale,
                "value": value,
                "limit": limit,
                "unit": unit,
                "ok": value <= limit,
            }
        )
    return out


def _exponent(y1, y2, n1: float, n2: float) -> float | None:
    """b in y ∝ n^b between two scales (1 = linear, 2 = quadratic); None without both values."""
    if not y1 or not y2 or y1 <= 0 or y2 <= 0:
        return None
    return math.log(y2 / y1) / math.log(n2 / n1)


def growth(results: list[dict], min_seconds: float = 0.5) -> list[dict]:
    """How each step grows from scale to scale, and where it would be at 10x the largest scale.

    Per step (at least `min_seconds` at the largest scale): seconds and peak memory per scale, the
    log-log exponents of both between consecutive scales, and the step's seconds projected to 10x
    the largest scale with its last exponent (what will dominate there). Sorted by that projection.
    """
    ok = sorted((r for r in results if r["ok"]), key=lambda r: r["restaurants"])
    if len(ok) < 2:
        return []
    last = ok[-1]
    rows = []
    for step, secs in last["steps"].items():
        if secs < min_seconds:
            continue
        pairs = list(itertools.pairwise(ok))
        mem = [r.get("step_memory", {}).get(step, {}).get("peak_gib") for r in ok]
        t_exp = [
            _exponent(
                a["steps"].get(step), b["steps"].get(step), a["restaurants"], b["restaurants"]
            )
            for a, b in pairs
        ]
        m_exp = [
            _exponent(m1, m2, a["restaurants"], b["restaurants"])
            for (a, b), m1, m2 in zip(pairs, mem[:-1], mem[1:], strict=True)
        ]
        b = t_exp[-1] if t_exp[-1] is not None else 1.0
        rows.append(
            {
                "step": step,
                "scales": [r["scale"] for r in ok],
                "seconds": [r["steps"].get(step) for r in ok],
                "peak_gib": mem,
                "time_exponents": t_exp,
                "memory_exponents": m_exp,
                "projected_10x_s": secs * 10**b,
            }
        )
    total = sum(r["projected_10x_s"] for r in rows) or 1.0
    for r in rows:
        r["projected_share"] = r["projected_10x_s"] / total
    return sorted(rows, key=lambda r: -r["projected_10x_s"])


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_growth(rows: list[dict]) -> None:
    if not rows:
        return
    scales = rows[0]["scales"]
    steps = [f"{a}->{b}" for a, b in itertools.pairwise(scales)]
    print("\nhow each step grows (log-log exponent vs restaurants: 1 = linear) and 10x projection")
    print_table(
        ["step", *[f"s {x}" for x in scales], *[f"GiB {x}" for x in scales]]
        + [f"time exp {x}" for x in steps]
        + [f"mem exp {x}" for x in steps]
        + ["10x s", "share"],
        [
            [
                r["step"],
                *[_fmt(v, ".1f") for v in r["seconds"]],
                *[_fmt(v, ".2f") for v in r["peak_gib"]],
                *[_fmt(v, ".2f") for v in r["time_exponents"]],
                *[_fmt(v, ".2f") for v in r["memory_exponents"]],
                f"{r['projected_10x_s']:.0f}",
                f"{100 * r['projected_share']:.0f}%",
            ]
            for r in rows
        ],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="+", default=["small", "medium", "large"])
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--assets-dir", default=str(ROOT / "benchmarks" / "report_assets"))
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--report-json", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    results = []
    for scale in args.scales:
        home = work / f"home-{scale}"
        print(f"rebuilding {scale} in {home} ...", flush=True)
        r = full_rebuild(home, scale, timeout=args.timeout)
        r["home"] = str(home)
        r["restaurants"] = NOMINAL_RESTAURANTS[scale]
        if r["ok"]:
            r.update(warehouse_counts(home))
        else:
            print(r["log_tail"], file=sys.stderr)
        results.append(r)
        print(
            f"  {scale}: {'ok' if r['ok'] else 'FAILED'} in {r['seconds']:.1f} s "
            f"({r['cpu_seconds']:.1f} CPU-s, load {r['load_avg_start'][0]:.1f} at the start), "
            f"peak {r['peak_rss_gib']:.2f} GiB",
            flush=True,
        )

    budgets = check_budgets(results)
    figures = plot(results, Path(args.assets_dir))

    print(
        "\nfull rebuild vs scale (fresh RECSYS_HOME, offline labeler, sample generated in the run)"
    )
    print_table(
        ["scale", "restaurants", "order lines", "rebuild s", "CPU-s", "load", "peak GiB", "ok"],
        [
            [
                r["scale"],
                f"{r['restaurants']:,}",
                f"{r.get('orders', 0):,}",
                f"{r['seconds']:.1f}",
                f"{r['cpu_seconds']:.1f}",
                f"{r['load_avg_start'][0]:.1f}-{r['load_avg_end'][0]:.1f}",
                f"{r['peak_rss_gib']:.2f}",
                r["ok"],
            ]
            for r in results
        ],
    )
    all_steps = sorted(
        {s for r in results for s in r["steps"]},
        key=lambda s: -max(r["steps"].get(s, 0) for r in results),
    )
    print(
        "\nper-step seconds (STEP_SUCCESS durations from the Dagster event log) / peak GiB of "
        "the process tree while the step ran"
    )
    print_table(
        ["step", *[r["scale"] for r in results]],
        [
            [
                s,
                *[
                    f"{r['steps'][s]:.1f} / "
                    f"{r.get('step_memory', {}).get(s, {}).get('peak_gib', float('nan')):.2f}"
                    if s in r["steps"]
                    else "-"
                    for r in results
                ],
            ]
            for s in all_steps
        ],
    )
    grow = growth(results)
    print_growth(grow)
    if budgets:
        print("\nbudgets")
        print_table(
            ["what", "scale", "measured", "budget", "met"],
            [
                [
                    b["what"],
                    b["scale"],
                    f"{b['value']:.1f} {b['unit']}",
                    f"≤ {b['limit']} {b['unit']}",
                    "yes" if b["ok"] else "NO",
                ]
                for b in budgets
            ],
        )
    for r in results:
        r.pop("log_tail", None)
    write_json(
        args.report_json,
        {
            "machine": machine(),
            "load_avg_at_end": os.getloadavg(),
            "results": results,
            "budgets": budgets,
            "growth": grow,
            "figures": figures,
        },
    )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
