"""Benchmark: `recsys recommend` cold-start latency and warm pyfunc predict latency per request.

Usage: .venv/bin/python benchmarks/recommend.py [--home DIR] [--runs 5] [--requests 200]
           [--report-json PATH]

Without --home, a small-scale rebuild (`recsys materialize`, offline labeler) makes a fresh home
with a champion. Then:

- cold start: `recsys recommend --name ... --menu ...` as a new process each time (imports, registry
  lookup, model load, labeling, scoring, printing): the first call after the rebuild, then the
  median / max of `--runs` further calls;
- warm: the champion loaded once through `mlflow.pyfunc.load_model("models:/...@champion")`, then
  `--requests` single-restaurant requests (real names and menus from the sample, k=10) timed one
  by one: median and p95 per request, after 5 warm-up requests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    VENV_BIN,
    full_rebuild,
    machine,
    median,
    percentile,
    print_table,
    rebuild_env,
    write_json,
)

QUERIES = [
    ("바삭바삭 치킨 역삼점", "후라이드치킨|양념치킨|치즈볼"),
    ("엄마손 분식", "떡볶이|김밥|순대"),
    ("홍콩반점", "짜장면|짬뽕|탕수육"),
    ("스시 하루", "모둠초밥|우동|연어덮밥"),
    ("카페 온도", "아메리카노|카페라떼|치즈케이크"),
]


def cold_start(home: Path, runs: int) -> dict:
    env = rebuild_env(home, "small")
    times, outputs = [], []
    for i in range(runs + 1):
        name, menu = QUERIES[i % len(QUERIES)]
        t = time.perf_counter()
        res = subprocess.run(
            [str(VENV_BIN / "recsys"), "recommend", "--name", name, "--menu", menu, "-k", "10"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - t)
        if res.returncode != 0:
            raise RuntimeError(f"recsys recommend failed: {res.stderr[-2000:]}")
        outputs.append(res.stdout)
    rest = times[1:]
    return {
        "first_s": times[0],
        "median_s": median(rest),
        "max_s": max(rest),
        "runs": rest,
        "example_output": outputs[-1][:600],
    }


def warm_predict(home: Path, n_requests: int) -> dict:
    import pandas as pd

    for k, v in rebuild_env(home, "small").items():
        if k.startswith(("RECSYS_", "MLFLOW_")):
            os.environ[k] = v
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from recsys_assets.config import load_settings
    from recsys_assets.ranking.recommend import CHAMPION_URI
    from recsys_assets.ranking.registry import configure_mlflow

    settings = load_settings()
    configure_mlflow(settings)
    import mlflow.pyfunc

    t = time.perf_counter()
    model = mlflow.pyfunc.load_model(CHAMPION_URI)
    load_s = time.perf_counter() - t

    sample = next((settings.home / "sample").glob("small-seed*"))
    rest = pd.read_parquet(sample / "restaurants.parquet", columns=["name", "menu"]).fillna("")
    rest = rest.sample(n=min(n_requests, len(rest)), random_state=0).reset_index(drop=True)
    reqs = [
        pd.DataFrame([{"name": str(r.name), "menu": str(r.menu), "k": 10}])
        for r in rest.itertuples(index=False)
    ]
    for r in reqs[:5]:
        model.predict(r)
    lat = []
    for r in reqs:
        t = time.perf_counter()
        out = model.predict(r)
        lat.append((time.perf_counter() - t) * 1000)
        if len(out) == 0:
            raise RuntimeError(f"the champion recommended nothing for {r.to_dict('records')}")
    return {
        "load_s": load_s,
        "requests": len(reqs),
        "median_ms": median(lat),
        "p95_ms": percentile(lat, 95),
        "max_ms": max(lat),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--home", default=None, help="an existing small-scale RECSYS_HOME with a champion"
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--report-json", default=None)
    args = ap.parse_args(argv)
    if args.home:
        home = Path(args.home)
    else:
        home = Path(tempfile.mkdtemp(prefix="rec-bench-")) / "home-small"
        r = full_rebuild(home, "small")
        if not r["ok"]:
            print(r["log_tail"], file=sys.stderr)
            return 1
    cold = cold_start(home, args.runs)
    warm = warm_predict(home, args.requests)

    print("recommend latency (champion of a small-scale build)")
    print_table(
        ["what", "figure"],
        [
            ["`recsys recommend`, first call after the rebuild", f"{cold['first_s']:.2f} s"],
            [
                f"`recsys recommend`, new process, median of {args.runs}",
                (f"{cold['median_s']:.2f} s (max {cold['max_s']:.2f} s)"),
            ],
            ["pyfunc load_model(champion)", f"{warm['load_s']:.2f} s"],
            [
                f"warm pyfunc predict, 1 restaurant, k=10 ({warm['requests']} requests)",
                f"median {warm['median_ms']:.1f} ms, p95 {warm['p95_ms']:.1f} ms",
            ],
        ],
    )
    write_json(
        args.report_json, {"machine": machine(), "home": str(home), "cold": cold, "warm": warm}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
