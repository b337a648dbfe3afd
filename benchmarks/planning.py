"""Planning: labeling 1M restaurants with N workers under a provider's rate limits.

How long does the shard backfill take, how many calls does it make and what does it cost, for
N = 1, 4, 16 workers (shard runs, or run pods on Kubernetes), with the LLM on every restaurant
and with the cascade (the offline lexicon first, the LLM only where it is unsure)? And from how
many workers on does the provider's limit, not the workers, bound the run?

Simulated, not extrapolated from arithmetic alone: tests/rate_limited_openai.py (the test
server, in its own process, with a fixed latency) enforces the provider's requests-per-minute
and tokens-per-minute limits the way OpenAI does (429 with Retry-After, retry-after-ms), and the
real engine labels through the real ChatOpenAI client. Each worker is one labeling engine with
its own ledger and `--concurrency` calls in flight, paced at the provider's limits divided by N
(RECSYS_LLM_RPM / RECSYS_LLM_TPM per run: how a deployment shares one organisation's limits);
the N engines run at once in one process (threads: the work is waiting on the network).

Scaled down, then extrapolated: each setting labels `--rows-per-worker` x N restaurants (at most
`--max-rows`), a couple of dozen seconds at the scenario's rates, and the measured per-restaurant
wall time, calls and cost are multiplied up to `--target` restaurants. That assumes the steady
state holds for the whole run (no provider outage, no warm-up beyond the first seconds, which
the short runs include and so slightly overstate). Token counts are the test server's
approximation (see benchmarks/labeling.py) priced at gpt-4o-mini's list price; the fake model's
keyword rule makes the cascade's share of LLM calls a property of the sample data, not of a model.

    .venv/bin/python benchmarks/planning.py [--rpm 3000] [--tpm 2000000] [--latency-ms 800]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from benchmarks.common import print_table, write_json  # noqa: E402
from recsys_assets.config import load_settings  # noqa: E402
from recsys_assets.labeling.engine import EngineConfig  # noqa: E402
from recsys_assets.labeling.llm import LLMOptions  # noqa: E402
from recsys_assets.labeling.service import label_frame  # noqa: E402
from recsys_assets.sample_data import generate_sample  # noqa: E402

KEY = "sk-bench-" + "x" * 32
MODEL = "gpt-4o-mini"


class LimitedServer:
    """tests/rate_limited_openai.py as a process (its own GIL), stopped by PID."""

    def __init__(self, *, rpm: int, tpm: int, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "rate_limited_openai.py"),
                f"--rpm={rpm}",
                f"--tpm={tpm}",
                f"--latency-ms={latency_ms}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None  # noqa: S101 (stdout=PIPE above)
        self.port = int(self.proc.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def restaurants(work: Path, n: int) -> pd.DataFrame:
    files = generate_sample(work / "sample", n_restaurants=n, seed=3, fmt="parquet")
    return pd.read_parquet(files.restaurants)[["restaurant_id", "name", "menu", "description"]]


def run_setting(
    df: pd.DataFrame, n_workers: int, labeler: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """N engines at once on N shards of `df`, against a fresh rate-limited server."""
    server = LimitedServer(rpm=args.rpm, tpm=args.tpm, latency_ms=args.latency_ms)
    reports: list[Any] = [None] * n_workers
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            part = df.iloc[i::n_workers].reset_index(drop=True)
            opts = LLMOptions(model=MODEL, base_url=server.base_url, api_key=KEY, timeout_s=60)
            cfg = EngineConfig(
                max_concurrency=args.concurrency,
                rpm=max(1, args.rpm // n_workers),
                tpm=max(1, args.tpm // n_workers),
            )
            settings = load_settings(home=work / f"{labeler}-{n_workers}-w{i}")
            _, reports[i] = label_frame(
                part, labeler=labeler, settings=settings, llm_options=opts, engine_config=cfg
            )
        except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread below)
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stats = server.stats()
    finally:
        server.close()
    if errors:
        raise errors[0]
    calls = int(stats["answered"])  # what the provider bills: answered requests
    return {
        "workers": n_workers,
        "labeler": labeler,
        "rows": len(df),
        "labeled": sum(r.done for r in reports),
        "wall_s": wall,
        "llm_calls": calls,
        "attempts": sum(r.llm_calls for r in reports),
        "tokens_in": sum(r.tokens_in for r in reports),
        "tokens_out": sum(r.tokens_out for r in reports),
        "cost_usd": sum(r.estimated_cost_usd for r in reports),
        "rejected_429": int(stats["faults"].get("provider_limit", 0)),
        "server_requests": int(stats["requests"]),
        "calls_per_s": calls / wall if wall else 0.0,
    }


def bounds(args: argparse.Namespace, tokens_per_call: float) -> dict[str, float]:
    """Calls per second one worker can make, and the provider's ceiling (RPM or TPM)."""
    per_worker = args.concurrency / (args.latency_ms / 1000)
    by_rpm = args.rpm / 60
    by_tpm = args.tpm / 60 / tokens_per_call if tokens_per_call else math.inf
    provider = min(by_rpm, by_tpm)
    return {
        "per_worker_calls_s": per_worker,
        "provider_calls_s": provider,
        "provider_limit": "RPM" if by_rpm <= by_tpm else "TPM",
        "crossover_workers": math.ceil(provider / per_worker),
    }


def extrapolate(r: dict[str, Any], target: int, b: dict[str, float]) -> dict[str, Any]:
    scale = target / r["rows"]
    worker_capacity = r["workers"] * b["per_worker_calls_s"]
    return {
        **r,
        "target": target,
        "target_hours": r["wall_s"] * scale / 3600,
        "target_calls": round(r["llm_calls"] * scale),
        "target_cost_usd": r["cost_usd"] * scale,
        "bound": "provider"
        if worker_capacity >= b.get("measured_provider_calls_s", b["provider_calls_s"])
        else "workers",
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rpm", type=int, default=3000, help="provider requests per minute")
    ap.add_argument("--tpm", type=int, default=2_000_000, help="provider tokens per minute")
    ap.add_argument("--latency-ms", type=float, default=800.0, help="provider latency per call")
    ap.add_argument("--concurrency", type=int, default=8, help="calls in flight per worker")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rows-per-worker", type=int, default=200)
    ap.add_argument("--max-rows", type=int, default=1200)
    ap.add_argument("--target", type=int, default=1_000_000)
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--report-json", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="planning-"))
    df_all = restaurants(work, min(args.max_rows, args.rows_per_worker * max(args.workers)))
    # Warm-up (imports, the structured-output probe) outside the timed runs.
    run_setting(df_all.head(8), 1, "llm", args, work / "warm-up")

    results = []
    for labeler in ("llm", "cascade"):
        for n in args.workers:
            rows = min(args.max_rows, args.rows_per_worker * n)
            r = run_setting(df_all.head(rows), n, labeler, args, work)
            print(json.dumps(r), flush=True)
            results.append(r)
    llm_runs = [r for r in results if r["labeler"] == "llm" and r["llm_calls"]]
    tokens_per_call = sum(r["tokens_in"] + r["tokens_out"] for r in llm_runs) / max(
        1, sum(r["llm_calls"] for r in llm_runs)
    )
    b = bounds(args, tokens_per_call)
    # What the provider really admitted: it reserves max_tokens against TPM, not only the tokens
    # used, so the measured ceiling sits below the arithmetic one.
    saturated = [r["calls_per_s"] for r in llm_runs if r["rejected_429"] or r["workers"] > 1]
    if saturated:
        b["measured_provider_calls_s"] = max(saturated)
        b["crossover_workers_measured"] = math.ceil(
            b["measured_provider_calls_s"] / b["per_worker_calls_s"]
        )
    table = [extrapolate(r, args.target, b) for r in results]
    print_table(
        [
            "labeler",
            "N",
            "rows",
            "wall s",
            "calls/s",
            "429s",
            f"{args.target:,}: hours",
            "calls",
            "cost $",
            "bound",
        ],
        [
            [
                t["labeler"],
                t["workers"],
                t["rows"],
                f"{t['wall_s']:.1f}",
                f"{t['calls_per_s']:.1f}",
                t["rejected_429"],
                f"{t['target_hours']:.1f}",
                f"{t['target_calls']:,}",
                f"{t['target_cost_usd']:,.0f}",
                t["bound"],
            ]
            for t in table
        ],
    )
    print(
        f"one worker: {b['per_worker_calls_s']:.1f} calls/s; the provider: "
        f"{b['provider_calls_s']:.1f} calls/s by arithmetic ({b['provider_limit']}), "
        f"{b.get('measured_provider_calls_s', float('nan')):.1f} calls/s measured; from "
        f"{b.get('crossover_workers_measured', b['crossover_workers'])} workers on the provider "
        "limit, not the workers, bounds the run"
    )
    write_json(
        args.report_json,
        {
            "scenario": {
                "rpm": args.rpm,
                "tpm": args.tpm,
                "latency_ms": args.latency_ms,
                "concurrency": args.concurrency,
                "target": args.target,
                "model_prices": MODEL,
                "tokens_per_call": tokens_per_call,
            },
            "bounds": b,
            "results": table,
        },
    )


if __name__ == "__main__":
    main()
