"""Benchmark of the LLM labeling engine against the notebook loop it replaces.

Runs against tests/fake_openai_server.py (a separate process, so it does not compete with the
client for the GIL) at a fixed latency, with the real ChatOpenAI client and a real SQLite ledger:

1. throughput: the seed's sequential loop (one call at a time + a pickle every 100 rows) vs the
   engine (max_concurrency parallel calls, per-call commits);
2. per-row checkpoint overhead of the ledger (one committed transaction per finished call);
3. calls repeated after a SIGKILL of `recsys label` mid-run (the seed loses up to 99);
4. tokens and cost per 1,000 restaurants, one restaurant per call vs micro-batching, with accuracy
   against the sample's ground truth;
5. the cascade: share of LLM calls saved and accuracy of each path;
6. real models on the real-world gold set (recsys_assets/data/real_world_restaurants.csv): the
   cascade's accuracy per model and per confidence band, from recorded answers (see below).
7. cost per 1,000 restaurants: online, Batch API, cascade, cascade + Batch API, with the input
   tokens the provider's prompt cache served (counted from the real requests by the fake server).

The fake model labels with a keyword rule, so its "accuracy" measures the plumbing (no answer lost
or misaligned by batching, retries or resumes), not a real model. Token counts are the fake's
approximation (Hangul ~1 token/char, ASCII ~4 chars/token); ratios between settings are meaningful.

    .venv/bin/python benchmarks/labeling.py [--rows 1000] [--latency-ms 100] [--baseline-rows 150]

Real models (6.) are far too slow on this CPU to run on every `make bench` (10-60 s per call), so
their answers are recorded once in benchmarks/data/real_llm_answers.csv and scored from there with
the same code as `recsys label eval` (evaluate.replay). To record a model: serve it (llama.cpp's
llama-server, tests/llm_servers.py), run `recsys label eval GOLD.csv --labeler llm` against it
(OPENAI_BASE_URL, RECSYS_LLM_MODEL, a fresh RECSYS_HOME), then
`benchmarks/labeling.py --record-real RECSYS_HOME --server llama-server` copies that ledger's
answers to the gold rows into the CSV (replacing the model's earlier rows).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle  # the seed's checkpoint format, reproduced only to time it (nothing is loaded back)
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from recsys_assets.config import load_settings  # noqa: E402
from recsys_assets.labeling import cascade  # noqa: E402
from recsys_assets.labeling.engine import EngineConfig  # noqa: E402
from recsys_assets.labeling.ledger import Ledger, LedgerRecord, input_key  # noqa: E402
from recsys_assets.labeling.llm import LabelItem, LLMLabeler, LLMOptions, estimate_cost  # noqa: E402
from recsys_assets.labeling.offline import OfflineLabeler  # noqa: E402
from recsys_assets.labeling.service import label_frame  # noqa: E402

KEY = "sk-bench-" + "x" * 32
MODEL = "gpt-4o-mini"


def load_restaurants(tmp: Path, n: int) -> pd.DataFrame:
    try:
        from recsys_assets.sample_data import generate_sample

        files = generate_sample(tmp / "sample", n_restaurants=n, fmt="parquet")
        df = pd.read_parquet(files.restaurants)
        truth = pd.read_parquet(files.ground_truth / "restaurant_truth.parquet")
        df = df.merge(
            truth[["restaurant_id", "industry"]].rename(columns={"industry": "truth"}),
            on="restaurant_id",
        )
    except ImportError:  # sample generator not available: simple rows, no ground truth
        menus = ["짜장면, 짬뽕", "삼겹살", "초밥, 우동", "피자", "떡볶이", "아메리카노"]
        df = pd.DataFrame(
            {
                "restaurant_id": [f"R{i}" for i in range(n)],
                "name": [f"가게{i}" for i in range(n)],
                "menu": [menus[i % 6] for i in range(n)],
                "description": None,
            }
        )
        df["truth"] = None
    return df[["restaurant_id", "name", "menu", "description", "truth"]]


class Server:
    def __init__(self, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "fake_openai_server.py"),
                "--latency-ms",
                str(latency_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None  # noqa: S101 (stdout=PIPE above)
        self.port = int(self.proc.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return int(json.loads(r.read())["requests"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def accuracy(out: pd.DataFrame, df: pd.DataFrame, mask=None) -> float | None:
    if df["truth"].isna().all():
        return None
    m = out.merge(df[["restaurant_id", "truth"]], on="restaurant_id")
    if mask is not None:
        m = m[mask(m)]
    return float((m["industry"] == m["truth"]).mean()) if len(m) else None


def run_engine(df, home: Path, server: Server, *, concurrency: int, items: int, labeler="openai"):
    os.environ["RECSYS_HOME"] = str(home)
    opts = LLMOptions(
        model=MODEL, base_url=server.base_url, api_key=KEY, timeout_s=30, items_per_call=items
    )
    cfg = EngineConfig(max_concurrency=concurrency, items_per_call=items)
    before = server.requests()
    t0 = time.perf_counter()
    out, rep = label_frame(
        df.drop(columns="truth"),
        labeler=labeler,
        settings=load_settings(),
        llm_options=opts,
        engine_config=cfg,
    )
    return out, rep, time.perf_counter() - t0, server.requests() - before


def seed_loop(df: pd.DataFrame, server: Server, ckpt: Path) -> float:
    """The notebook loop: one call at a time, the whole result list pickled every 100 rows."""
    labeler = LLMLabeler(LLMOptions(model=MODEL, base_url=server.base_url, api_key=KEY))
    result: list[str] = []
    t0 = time.perf_counter()
    rows = zip(df["name"], df["menu"], df["description"], strict=True)
    for idx, (name, menu, description) in enumerate(rows):
        res = labeler.label([LabelItem("r1", name, menu, description)])
        result.append(next(iter(res.answers.values())).industry if res.answers else "other")
        if (idx + 1) % 100 == 0:
            with ckpt.open("wb") as fh:
                pickle.dump({"result": result, "last_index": idx}, fh)
    return time.perf_counter() - t0


def checkpoint_overhead(tmp: Path, n: int = 2000) -> float:
    with Ledger(tmp / "overhead.sqlite") as led:
        t0 = time.perf_counter()
        for i in range(n):
            led.record(
                "fp",
                [
                    LedgerRecord(
                        input_key(str(i), "menu"),
                        "ok",
                        "korean",
                        0.9,
                        raw_response='{"industry":"korean"}',
                        tokens_in=900,
                        tokens_out=20,
                        latency_ms=100.0,
                    )
                ],
                model=MODEL,
                prompt_version="bench",
            )
        return (time.perf_counter() - t0) * 1000 / n


def kill_and_resume(df: pd.DataFrame, tmp: Path, server: Server, concurrency: int) -> dict:
    home = tmp / "kill_home"
    src = tmp / "kill_in.parquet"
    df.drop(columns="truth").to_parquet(src, index=False)
    env = {
        **os.environ,
        "RECSYS_HOME": str(home),
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_MAX_CONCURRENCY": str(concurrency),
        "PYTHONPATH": str(REPO),
    }
    before = server.requests()
    cmd = [
        sys.executable,
        "-m",
        "recsys_assets.labeling.commands",
        "label",
        str(src),
        "-o",
        str(tmp / "kill_out.parquet"),
        "--labeler",
        "openai",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger_path = home / "labeling_ledger.sqlite"
    target = len(df) * 2 // 5
    while True:
        rows = 0
        if ledger_path.exists():
            con = sqlite3.connect(ledger_path, timeout=5)
            try:
                rows = con.execute("SELECT count(*) FROM labels").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
            con.close()
        if rows >= target or proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = server.requests() - before
    con = sqlite3.connect(ledger_path)
    saved = con.execute("SELECT count(*) FROM labels").fetchone()[0]
    con.close()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    total = server.requests() - before
    return {
        "killed_at_rows": saved,
        "calls_at_kill": at_kill,
        "total_calls": total,
        "repeated": total - len(df),
        "resume_rc": res.returncode,
    }


# -- 6. real models on the real-world gold set, from recorded answers --------------------------------
REAL_ANSWERS = REPO / "benchmarks" / "data" / "real_llm_answers.csv"
REAL_COLUMNS = (
    "model",
    "server",
    "prompt_fingerprint",
    "gold_line",
    "name",
    "status",
    "industry",
    "confidence",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "recorded_at",
)


def record_real(home: Path, server: str, out: Path = REAL_ANSWERS) -> int:
    """Copy a ledger's final answers to the gold rows into the recorded-answers CSV (the model's
    earlier rows there are replaced). Returns the number of rows recorded."""
    from recsys_assets.labeling import evaluate

    gold = evaluate.load_gold()
    f = gold.frame
    line_of = {
        input_key(f["name"].iat[i], f["menu"].iat[i], f["description"].iat[i]): i + 2
        for i in range(len(f))
    }
    rows = []
    with Ledger(home / "labeling_ledger.sqlite") as led:
        for r in led.iter_rows():  # oldest first: a later answer to the same row wins
            if r["input_key"] in line_of:  # failed: asked, no answer (scored as such)
                rows.append(
                    {
                        "model": r["model"],
                        "server": server,
                        "prompt_fingerprint": r["fingerprint"],
                        "gold_line": line_of[r["input_key"]],
                        "name": f["name"].iat[line_of[r["input_key"]] - 2],
                        **{
                            k: r[k]
                            for k in (
                                "status",
                                "industry",
                                "confidence",
                                "tokens_in",
                                "tokens_out",
                                "latency_ms",
                            )
                        },
                        "recorded_at": r["updated_at"],
                    }
                )
    new = pd.DataFrame(rows, columns=list(REAL_COLUMNS)).drop_duplicates(
        ["model", "gold_line"], keep="last"
    )
    old = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=list(REAL_COLUMNS))
    merged = pd.concat([old[~old["model"].isin(set(new["model"]))], new], ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.sort_values(["model", "gold_line"]).to_csv(out, index=False)
    return len(new)


def real_models(path: Path = REAL_ANSWERS) -> list[dict]:
    """Per recorded model: the offline labeler, the model alone, the old cascade (always takes
    the model's answer) and the routed cascade (the packaged rule), on the real-world gold set."""
    from recsys_assets.labeling import evaluate as ev

    if not path.exists():
        return []
    gold, routing = ev.load_gold(), cascade.load_routing()
    recorded = pd.read_csv(path)
    out = []
    for model, g in recorded.groupby("model", sort=True):
        answers = {
            int(r["gold_line"]) - 2: ev.Answer(
                str(r["status"]),
                r["industry"] if isinstance(r["industry"], str) else None,
                float(r["confidence"]),
                int(r["tokens_in"]),
                int(r["tokens_out"]),
                0.0,
            )
            for r in g.to_dict("records")
        }
        offline = OfflineLabeler().predict_many(
            zip(gold.frame["name"], gold.frame["menu"], gold.frame["description"], strict=True)
        )
        covered = [
            e
            for e in routing.margin_bands[1:]
            if all(i in answers for i, p in enumerate(offline) if p.margin < e)
        ]
        if not covered:
            continue
        ask = max(covered)  # the cascade margin these answers cover completely
        naive = ev.replay(
            gold,
            answers,
            labeler="cascade",
            model=str(model),
            ask_margin=ask,
            rule=cascade.Rule(1.0, 0.0, "always"),
        )
        routed = ev.replay(
            gold,
            answers,
            labeler="cascade",
            model=str(model),
            ask_margin=ask,
            rule=routing.rule_for(str(model)),
        )
        cal = ev.calibrate(routed, routing)
        sent = set(routed.asked)
        right = {i: a.status == "ok" and a.industry == gold.truth[i] for i, a in answers.items()}
        llm_ok = sum(right[i] for i in sent)
        extra = [right[i] for i in answers if i not in sent]
        bands = ev.margin_bands(routed, routing)
        bands["always_ok"] = ev.margin_bands(naive, routing)["result_ok"]
        out.append(
            {
                "model": str(model),
                "server": ", ".join(sorted(set(g["server"]))),
                "fingerprints": ", ".join(sorted(set(g["prompt_fingerprint"]))),
                "answered": len(sent),
                "ask_margin": ask,
                "rows": routed.n,
                "offline_ok": cal.offline_correct,
                "llm_ok": llm_ok,
                "llm_ci": ev.wilson(llm_ok, len(sent)),
                "extra_rows": len(extra),
                "extra_ok": sum(extra),
                "always_ok": naive.correct,
                "routed_ok": routed.correct,
                "routed_ci": ev.wilson(routed.correct, routed.n),
                "rule": routed.rule.describe() if routed.rule else "",
                "heldout": cal.heldout_accuracy,
                "cv": f"{cal.folds}-fold x {cal.repeats}",
                "latency_p50_s": float(g["latency_ms"].median() / 1000),
                "bands": bands.to_dict("records"),
                "confidence": ev.band_cells(routed, routing).to_dict("records"),
            }
        )
    return out


def real_models_markdown(results: list[dict]) -> str:
    """The report section: one summary table, then the band table per model."""
    if not results:
        return "No recorded real-model answers (benchmarks/data/real_llm_answers.csv).\n"
    md = [
        (
            "| model | rows the cascade sends (margin <) | offline alone | model alone, on the rows "
            "sent | model alone, other recorded rows | cascade, model always trusted (before) "
            "| cascade, routed (now) | routed, 5-fold CV held-out | p50 s/call |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        n = r["rows"]
        md.append(
            f"| {r['model']} | {r['answered']} answered, all below {r['ask_margin']:g} "
            f"| {r['offline_ok']}/{n} = {r['offline_ok'] / n:.3f} "
            f"| {r['llm_ok']}/{r['answered']} = {r['llm_ok'] / r['answered']:.3f} "
            f"(CI {r['llm_ci'][0]:.2f}-{r['llm_ci'][1]:.2f}) "
            + (
                f"| {r['extra_ok']}/{r['extra_rows']} = {r['extra_ok'] / r['extra_rows']:.3f} "
                if r["extra_rows"]
                else "| - "
            )
            + f"| {r['always_ok']}/{n} = {r['always_ok'] / n:.3f} "
            f"| **{r['routed_ok']}/{n} = {r['routed_ok'] / n:.3f}** "
            f"(CI {r['routed_ci'][0]:.3f}-{r['routed_ci'][1]:.3f}) "
            f"| {r['heldout']:.3f} | {r['latency_p50_s']:.1f} |"
        )
    for r in results:
        md += [
            "",
            (
                f"**{r['model']}** ({r['server']}; prompt fingerprint {r['fingerprints']}); "
                f"rule: {r['rule']}."
            ),
            "",
            (
                "| offline margin band | rows | sent to the model | offline right | model right "
                "| cascade always trusting right | cascade routed right |"
            ),
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        md += [
            (
                f"| {b['offline_margin']} | {b['rows']} | {b['asked']} | {b['offline_ok']} "
                f"| {b['llm_ok']} | {b['always_ok']} | {b['result_ok']} |"
            )
            for b in r["bands"]
        ]
        md += [
            "",
            (
                "| offline margin | model confidence | agrees with offline | rows | offline "
                "right | model right | routed right |"
            ),
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        md += [
            (
                f"| {c['offline_margin']} | {c['llm_confidence']} | {c['agree']} | {c['rows']} "
                f"| {c['offline_ok']} | {c['llm_ok']} | {c['result_ok']} |"
            )
            for c in r["confidence"]
        ]
    md += [
        "",
        (
            "*Always trusted* takes every valid model answer on the rows sent (the cascade before "
            "the routing; a row without a valid answer keeps the lexicon's label in both cascade "
            "columns). *Model alone* counts a row without an answer as wrong; *other recorded rows* are "
            "a 2-per-industry sample of the rows the lexicon is sure of (offline margin >= 0.35, "
            "first two per industry in file order). p50 s/call is the "
            "recorded latency on 2 shared cores (other jobs ran at the same time)."
        ),
    ]
    return "\n".join(md) + "\n"


# -- 7. cost per 1k restaurants: online vs batch vs cascade (+ batch), cached tokens ------------------
COST_MODES = (
    ("online", "llm", "online"),
    ("batch", "llm", "batch"),
    ("cascade", "cascade", "online"),
    ("cascade + batch", "cascade", "batch"),
)


def cost_modes(df: pd.DataFrame, tmp: Path, items: tuple[int, ...] = (1, 10)) -> list[dict]:
    """Label `df` each way against an in-process fake server whose prompt cache follows OpenAI's
    rule (a repeated prefix of >= `cache_min_tokens` is served from the cache), at 1024 (OpenAI's
    minimum) and at 512 (a provider caching shorter prefixes). gpt-4o-mini prices, cached input
    at half the input price, the Batch API at half the online price."""
    out = []
    for cache_min in (1024, 512):
        for n_items in items:
            for name, labeler, mode in COST_MODES:
                home = tmp / f"cost-{cache_min}-{n_items}-{name.replace(' ', '')}"
                out.append(_cost_run(df, home, cache_min, n_items, name, labeler, mode))
    return out


def _cost_run(df, home: Path, cache_min: int, n_items: int, name: str, labeler: str, mode: str):
    from dataclasses import replace

    from tests.fake_openai_server import FakeOpenAI

    with FakeOpenAI() as srv:
        srv.keep_bodies = False
        srv.cache_min_tokens = cache_min
        settings = load_settings(home=str(home))
        settings = replace(settings, llm=replace(settings.llm, batch_poll_s=0.05, mode=mode))
        opts = LLMOptions(
            model=MODEL,
            base_url=srv.base_url,
            api_key=KEY,
            items_per_call=n_items,
            structured="json_schema",
        )
        _, rep = label_frame(
            df.drop(columns="truth"),
            labeler=labeler,
            settings=settings,
            llm_options=opts,
            engine_config=EngineConfig(max_concurrency=8, items_per_call=n_items),
            mode=mode,
        )
        requests = srv.requests + sum(srv.submitted.values())
    nocache = opts.cost(rep.tokens_in, rep.tokens_out, 0, batch=mode == "batch")
    per_k = 1000 / len(df)
    return {
        "cache_min_tokens": cache_min,
        "items_per_call": n_items,
        "way": name,
        "rows_to_llm": rep.total - rep.offline_answered,
        "requests": requests,
        "tokens_in_per_1k": rep.tokens_in * per_k,
        "cached_per_1k": rep.tokens_cached * per_k,
        "tokens_out_per_1k": rep.tokens_out * per_k,
        "usd_per_1k": rep.estimated_cost_usd * per_k,
        "usd_per_1k_no_cache": nocache * per_k,
    }


def cost_modes_markdown(results: list[dict], rows: int) -> str:
    md = [
        (
            f"{rows} sample restaurants labeled each way against the fake server (tokens counted "
            "from the requests actually sent; gpt-4o-mini prices: $0.15/1M in, $0.60/1M out, "
            "cached input at 50 %, the Batch API at 50 %). The cascade sends the LLM only the rows "
            "the lexicon is unsure of.\n"
        ),
        (
            "| cache rule | items/call | way | rows to the LLM | requests | input tok/1k "
            "| of which cached | output tok/1k | $ / 1k restaurants | $ / 1k without the cache |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        md.append(
            f"| prefix >= {r['cache_min_tokens']} tok | {r['items_per_call']} | {r['way']} "
            f"| {r['rows_to_llm']} | {r['requests']} | {r['tokens_in_per_1k']:,.0f} "
            f"| {r['cached_per_1k']:,.0f} | {r['tokens_out_per_1k']:,.0f} "
            f"| **{r['usd_per_1k']:.4f}** | {r['usd_per_1k_no_cache']:.4f} |"
        )
    md.append(
        "\nThe stable prefix (the system message: taxonomy, rules, hard examples) is ~900 tokens "
        "by the fake's count, under OpenAI's 1,024-token caching minimum, so at OpenAI's rule "
        "nothing is cached; a provider caching shorter prefixes (the 512 rows) serves most of the "
        "input from its cache. The prefix is byte-identical across calls "
        "(tests/test_batch_labeling.py)."
    )
    return "\n".join(md) + "\n"


def main() -> None:
    """Run the five measurements in order and print one table.

    Long because the scenarios share one fake server and one temporary directory, and each is a
    few lines of setup plus its report rows; read top to bottom it is the benchmark's protocol.
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument(
        "--baseline-rows",
        type=int,
        default=150,
        help="rows for the sequential seed loop (it is slow by design)",
    )
    ap.add_argument("--report-json", default=None, help="also write the figures as JSON here")
    ap.add_argument(
        "--record-real",
        type=Path,
        default=None,
        metavar="RECSYS_HOME",
        help="copy that home's ledger answers to the gold rows into "
        "benchmarks/data/real_llm_answers.csv, then exit",
    )
    ap.add_argument("--server", default="llama-server", help="with --record-real: the server kind")
    ap.add_argument("--real-only", action="store_true", help="only 6. (recorded real models)")
    ap.add_argument("--cost-only", action="store_true", help="only 7. (cost per 1k, each way)")
    args = ap.parse_args()
    if args.cost_only:
        tmp = Path(tempfile.mkdtemp(prefix="labeling-cost-"))
        costs = cost_modes(load_restaurants(tmp, args.rows), tmp)
        md = cost_modes_markdown(costs, args.rows)
        print(md)
        if args.report_json:
            Path(args.report_json).write_text(
                json.dumps({"cost_modes": costs, "cost_modes_md": md}, ensure_ascii=False, indent=2)
            )
        return
    if args.record_real:
        print(f"recorded {record_real(args.record_real, args.server)} answers in {REAL_ANSWERS}")
        return
    real = real_models()
    if args.real_only:
        print(real_models_markdown(real))
        if args.report_json:
            Path(args.report_json).write_text(
                json.dumps(
                    {"real_models": real, "real_models_md": real_models_markdown(real)},
                    ensure_ascii=False,
                    indent=2,
                )
            )
        return

    tmp = Path(tempfile.mkdtemp(prefix="labeling-bench-"))
    df = load_restaurants(tmp, args.rows)
    server = Server(args.latency_ms)
    lines: list[tuple[str, str]] = []
    try:
        # 1. throughput
        t_seed = seed_loop(df.head(args.baseline_rows), server, tmp / "checkpoint.pkl")
        seed_rate = args.baseline_rows / t_seed
        # One-time startup (imports, client and pydantic models built on the first calls) is
        # reported apart from the steady-state throughput.
        _, _, t_warm, _ = run_engine(
            df.tail(16), tmp / "warm", server, concurrency=args.concurrency, items=1
        )
        out1, rep1, t_eng, calls1 = run_engine(
            df, tmp / "h1", server, concurrency=args.concurrency, items=1
        )
        _, _, t16, _ = run_engine(
            df, tmp / "h16", server, concurrency=2 * args.concurrency, items=1
        )
        eng_rate = len(df) / t_eng
        ceiling = args.concurrency / (args.latency_ms / 1000)
        lines += [
            (
                "seed loop (sequential + pickle/100)",
                f"{seed_rate:6.1f} rows/s  ({args.baseline_rows} rows)",
            ),
            (
                f"engine, max_concurrency={args.concurrency}",
                f"{eng_rate:6.1f} rows/s  ({len(df)} rows, {t_eng:.1f} s, {calls1} calls)",
            ),
            ("speed-up vs seed", f"{eng_rate / seed_rate:6.1f}x  (goal >= 10x)"),
            (
                "share of ceiling concurrency/latency",
                f"{eng_rate / ceiling:6.1%}  (ceiling {ceiling:.0f}/s, goal >= 80%)",
            ),
            ("latency p50 / p95", f"{rep1.latency_p50_ms} / {rep1.latency_p95_ms} ms"),
            (
                f"engine, max_concurrency={2 * args.concurrency}",
                (
                    f"{len(df) / t16:6.1f} rows/s  ({len(df) / t16 / seed_rate:.1f}x seed, "
                    f"{len(df) / t16 / (2 * ceiling):.0%} of its ceiling)"
                ),
            ),
            ("warm-up run (16 rows, not counted)", f"{t_warm:.1f} s"),
        ]
        # 2. checkpoint overhead
        lines.append(
            (
                "ledger commit per finished call",
                f"{checkpoint_overhead(tmp):.3f} ms/row (goal < 1 ms)",
            )
        )
        # 3. kill and resume
        k = kill_and_resume(df, tmp, server, args.concurrency)
        lines += [
            ("SIGKILL at", f"{k['killed_at_rows']} rows saved, {k['calls_at_kill']} calls made"),
            (
                "calls repeated after resume",
                f"{k['repeated']}  (<= max_concurrency {args.concurrency}; seed: up to 99)",
            ),
        ]
        # 4. cost per 1k, micro-batching
        per_k = 1000 / len(df)
        acc1 = accuracy(out1, df)
        lines.append(
            (
                "items/call=1",
                (
                    f"${rep1.estimated_cost_usd * per_k:.4f}/1k, "
                    f"{(rep1.tokens_in + rep1.tokens_out) * per_k:,.0f} tok/1k, acc {acc1}"
                ),
            )
        )
        for items in (5, 10, 20):
            o, r, t, c = run_engine(
                df, tmp / f"hb{items}", server, concurrency=args.concurrency, items=items
            )
            flagged = int(o["flagged"].sum())
            lines.append(
                (
                    f"items/call={items}",
                    (
                        f"${r.estimated_cost_usd * per_k:.4f}/1k, "
                        f"{(r.tokens_in + r.tokens_out) * per_k:,.0f} tok/1k, acc {accuracy(o, df)}, "
                        f"{c} calls, {t:.1f} s, flagged {flagged}"
                    ),
                )
            )
        # 5. cascade
        if not df["truth"].isna().all():
            from recsys_assets.labeling.offline import OfflineLabeler

            preds = OfflineLabeler().predict_many(
                zip(df["name"], df["menu"], df["description"], strict=True)
            )
            truth = df["truth"].tolist()
            for row in cascade.sweep(preds, truth, [0.0, 0.2, 0.3, cascade.DEFAULT_MARGIN, 0.5]):
                lines.append(
                    (
                        f"cascade sweep margin>={row['margin']}",
                        (
                            f"offline answers {row['offline_share']:.1%} at acc "
                            f"{row['offline_accuracy']:.4f}; offline acc on the rest "
                            f"{row['offline_accuracy_on_rest']:.3f}"
                        ),
                    )
                )
        oc, rc, tc, cc = run_engine(
            df, tmp / "hc", server, concurrency=args.concurrency, items=1, labeler="cascade"
        )
        lines += [
            (
                f"cascade (margin {cascade.DEFAULT_MARGIN})",
                (
                    f"{rc.offline_answered / rc.total:.1%} answered offline, {cc} LLM calls, "
                    f"${rc.estimated_cost_usd * per_k:.4f}/1k, {tc:.1f} s"
                ),
            ),
            (
                "cascade accuracy: all / offline path / LLM path (fake)",
                (
                    f"{accuracy(oc, df)} / "
                    f"{accuracy(oc, df, lambda m: m['source'] == 'cascade_offline')} / "
                    f"{accuracy(oc, df, lambda m: m['source'] == 'cascade_llm')}"
                ),
            ),
        ]
        # 7. cost per 1k each way (online, batch, cascade, cascade + batch), cached tokens
        costs = cost_modes(df, tmp)
        price = estimate_cost(MODEL, 10**6, 0), estimate_cost(MODEL, 0, 10**6)
        lines.append(("prices used", f"{MODEL}: ${price[0]}/1M in, ${price[1]}/1M out"))
    finally:
        server.close()

    width = max(len(a) for a, _ in lines)
    print(
        f"labeling benchmark: {len(df)} restaurants, fake server latency {args.latency_ms:.0f} ms"
    )
    for a, b in lines:
        print(f"  {a:<{width}}  {b}")
    if args.report_json:
        Path(args.report_json).write_text(
            json.dumps(
                {
                    "rows": len(df),
                    "latency_ms": args.latency_ms,
                    "concurrency": args.concurrency,
                    "baseline_rows": args.baseline_rows,
                    "seed_rows_per_s": seed_rate,
                    "engine_rows_per_s": eng_rate,
                    "speedup": eng_rate / seed_rate,
                    "lines": lines,
                    "real_models": real,
                    "real_models_md": real_models_markdown(real),
                    "cost_modes": costs,
                    "cost_modes_md": cost_modes_markdown(costs, len(df)),
                },
                ensure_ascii=False,
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
