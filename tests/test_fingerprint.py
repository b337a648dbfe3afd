"""The content-keyed cache: the ledger fingerprint hashes what the request sends.

Editing the prompt (a rule or a taxonomy line in taxonomy.yaml, a hard example in llm.py) or an
answer-shaping setting makes a new fingerprint with no version to bump, so every input is asked
again once; an unchanged rerun asks nothing. `recsys ledger stats` names the current fingerprint
and how many answered inputs it would pay for again; `recsys label --dry-run` predicts the run
(rows, ledger hits, calls, tokens, cost, time) with no request and no write.

File edits are made in a copy of the package, run by the real CLI in a subprocess against the
project's fake OpenAI-compatible server, whose request counter is the bill.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import string
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets import taxonomy
from recsys_assets.cli import _register_optional
from recsys_assets.config import load_settings
from recsys_assets.labeling import estimate
from recsys_assets.labeling.engine import EngineConfig
from recsys_assets.labeling.ledger import fingerprint
from recsys_assets.labeling.llm import LLMOptions
from recsys_assets.labeling.service import label_frame
from tests.fake_openai_server import FakeOpenAI
from tests.in_process import InProcess, recsys_here

_register_optional()
REPO = Path(__file__).resolve().parents[1]
MENUS = [
    "짜장면, 짬뽕",
    "삼겹살, 항정살",
    "연어초밥, 우동",
    "페퍼로니 피자",
    "떡볶이, 튀김",
    "아메리카노, 빙수",
    "모둠꼬치, 생맥주",
]


def fake_key() -> str:
    return "sk-test-" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(32)
    )


def make_input(path: Path, n: int, *, offset: int = 0) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "restaurant_id": [f"R{i:03d}" for i in range(offset, offset + n)],
            "name": [f"가게{i}" for i in range(offset, offset + n)],
            "menu": [MENUS[i % len(MENUS)] for i in range(offset, offset + n)],
        }
    )
    df.to_csv(path, index=False)
    return df


@pytest.fixture
def server():
    with FakeOpenAI(latency_ms=5) as srv:
        yield srv


@pytest.fixture
def cli_env(recsys_home, server, tmp_path):
    """The environment of a `recsys` subprocess: the fake server, a fresh key, this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPENAI_API_KEY": fake_key(),
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_MAX_CONCURRENCY": "4",
        "RECSYS_LLM_BACKOFF_BASE": "0.005",
        "RECSYS_LLM_TIMEOUT": "10",
    }
    for var in (
        "RECSYS_LLM_ITEMS_PER_CALL",
        "RECSYS_LLM_RPM",
        "RECSYS_LLM_TPM",
        "RECSYS_LLM_ASSUMED_LATENCY",
        "RECSYS_LEDGER_URL",
    ):
        env.pop(var, None)
    return env


def recsys(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI. `cwd` is never the repo, so PYTHONPATH alone decides which package runs."""
    return subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def ok(proc: subprocess.CompletedProcess | InProcess) -> subprocess.CompletedProcess | InProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def stats_json(env: dict[str, str], cwd: Path) -> dict:
    return json.loads(ok(recsys(["ledger", "stats", "--json"], env, cwd)).stdout)


def plan_of(stdout: str) -> dict[str, int]:
    """The numbers of a `--dry-run` printout (its documented lines)."""

    def number(label: str) -> int:
        m = re.search(rf"^{label}\s+([\d,]+)", stdout, re.M)
        assert m, f"no {label!r} line in:\n{stdout}"
        return int(m.group(1).replace(",", ""))

    calls = re.search(r"^to the LLM\s+[\d,]+\s+inputs in ([\d,]+) calls", stdout, re.M)
    assert calls, stdout
    out = {
        "rows": number("input rows"),
        "in_ledger": number("already in the ledger"),
        "to_llm": number("to the LLM"),
        "calls": int(calls.group(1).replace(",", "")),
    }
    if re.search(r"^answered offline", stdout, re.M):
        out["offline"] = number("answered offline")
    tokens = re.search(r"^estimated tokens\s+[\d,]+\s+\(([\d,]+) in \+ ([\d,]+) out", stdout, re.M)
    if tokens:
        out["tokens_in"], out["tokens_out"] = (int(t.replace(",", "")) for t in tokens.groups())
    return out


def copy_package(tmp_path: Path) -> Path:
    """A private copy of the package to edit like a developer would; returns its PYTHONPATH."""
    root = tmp_path / "checkout"
    shutil.copytree(
        REPO / "recsys_assets", root / "recsys_assets", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# Each edit changes what the model is asked, and nothing bumps PROMPT_VERSION.
EDITS = {
    "rule": (
        "data/taxonomy.yaml",
        "  - The menu outweighs the name; a name alone is a weak hint.",
        "  - The menu outweighs the name; a name alone is a weak hint, even a famous one.",
    ),
    "taxonomy_description": (
        "data/taxonomy.yaml",
        "    name_en: Pizza\n",
        "    name_en: Pizza and calzone\n",
    ),
    "hard_example": (
        "labeling/llm.py",
        '"japanese", "sushi and udon"),',
        '"japanese", "sushi and udon are Japanese"),',
    ),
    "items_per_call": None,  # RECSYS_LLM_ITEMS_PER_CALL=3 instead of the default 1
}


def run_label(src: Path, env: dict[str, str], cwd: Path, server: FakeOpenAI) -> tuple[int, str]:
    """One real `recsys label --labeler llm`: (requests it made, the fingerprint it used)."""
    before = server.requests
    proc = ok(
        recsys(
            ["label", str(src), "-o", str(cwd / "out.csv"), "--labeler", "llm", "--no-progress"],
            env,
            cwd,
        )
    )
    m = re.search(r"fingerprint ([0-9a-f]{16})", proc.stderr)
    assert m, proc.stderr
    return server.requests - before, m.group(1)


@pytest.mark.heavy
def test_each_edit_asks_every_row_again_once_and_a_rerun_asks_nothing(cli_env, server, tmp_path):
    checkout = copy_package(tmp_path)
    env = {**cli_env, "PYTHONPATH": str(checkout)}
    src = tmp_path / "in.csv"
    n = 12
    make_input(src, n)
    calls, first = run_label(src, env, tmp_path, server)
    assert calls == n
    assert run_label(src, env, tmp_path, server) == (0, first)  # unchanged: nothing asked again
    seen = {first}
    for change, spec in EDITS.items():
        per_call = 1
        if spec is None:
            per_call, env = 3, {**env, "RECSYS_LLM_ITEMS_PER_CALL": "3"}
        else:
            file, old, new = spec
            edit(checkout / "recsys_assets" / file, old, new)
        calls, fp = run_label(src, env, tmp_path, server)
        assert fp not in seen, change
        assert calls == math.ceil(n / per_call), change  # every row asked again, once
        seen.add(fp)
    assert run_label(src, env, tmp_path, server) == (0, fp)  # the last settings are cached too


@pytest.mark.heavy
def test_stats_and_dry_run_after_an_edit_show_the_current_fingerprint_and_the_repay(
    cli_env, server, tmp_path
):
    checkout = copy_package(tmp_path)
    env = {**cli_env, "PYTHONPATH": str(checkout)}
    src = tmp_path / "in.csv"
    n = 10
    make_input(src, n)
    _, old_fp = run_label(src, env, tmp_path, server)
    edit(
        checkout / "recsys_assets" / "data" / "taxonomy.yaml",
        "  - What the restaurant mainly sells decides the industry.",
        "  - What the restaurant mainly sells decides the industry, not its decoration.",
    )

    text = ok(recsys(["ledger", "stats"], env, tmp_path)).stdout
    current = re.search(
        r"^current fingerprint ([0-9a-f]{16}) .*: (\d+) inputs answered under it$", text, re.M
    )
    assert current, text
    new_fp = current.group(1)
    assert new_fp != old_fp and current.group(2) == "0"
    assert re.search(rf"^re-pay: {n} inputs answered only under other fingerprints", text, re.M)
    old_line = next(line for line in text.splitlines() if old_fp in line)
    assert old_line.startswith(f"  {old_fp}  ok ") and f"{n:>8}" in old_line  # listed, not current

    plan = plan_of(
        ok(recsys(["label", str(src), "--dry-run", "--labeler", "llm"], env, tmp_path)).stdout
    )
    assert server.requests == n  # the dry run asked nothing
    assert (plan["rows"], plan["to_llm"], plan["in_ledger"], plan["calls"]) == (n, n, 0, n)

    assert run_label(src, env, tmp_path, server) == (n, new_fp)
    after = stats_json(env, tmp_path)
    assert after["current"]["fingerprint"] == new_fp
    assert (after["current"]["answered"], after["current"]["repay_inputs"]) == (n, 0)
    rows = {g["fingerprint"]: (g["rows"], g["current"]) for g in after["groups"]}
    assert rows == {old_fp: (n, False), new_fp: (n, True)}


def test_the_fingerprint_hashes_the_request_as_sent(recsys_home, server):
    """The digests in the fingerprint are those of the system message and schema on the wire."""
    df = pd.DataFrame(
        {
            "restaurant_id": ["a", "b", "c"],
            "name": ["가게", "집", "점"],
            "menu": ["짜장면", "피자", "김밥"],
        }
    )
    for per_call in (1, 3):
        server.configure(bodies=[])
        opts = LLMOptions(
            base_url=server.base_url, api_key=fake_key(), timeout_s=5, temperature=0.2
        )
        cfg = EngineConfig(max_concurrency=1, items_per_call=per_call)
        _, rep = label_frame(
            df, labeler="llm", settings=load_settings(), llm_options=opts, engine_config=cfg
        )
        params = replace(opts, items_per_call=per_call).fingerprint_params()
        assert rep.fingerprint == fingerprint(params)
        body = server.bodies[0]
        system = body["messages"][0]
        assert system["role"] == "system"
        sent_schema = json.dumps(
            body["response_format"]["json_schema"], sort_keys=True, ensure_ascii=False
        )
        digest = {
            k: hashlib.sha256(v.encode()).hexdigest()[:16]
            for k, v in (("system", system["content"]), ("schema", sent_schema))
        }
        assert params["system_prompt_sha256"] == digest["system"]
        assert params["schema_sha256"] == digest["schema"]
        assert (params["model"], params["temperature"]) == (body["model"], body["temperature"])
        assert params["items_per_call"] == per_call


def test_temperature_is_part_of_the_fingerprint(recsys_home, server):
    """Temperature has no setting of its own (LLMOptions only), so this one runs in-process."""
    df = pd.DataFrame(
        {
            "restaurant_id": [str(i) for i in range(6)],
            "name": [f"가게{i}" for i in range(6)],
            "menu": MENUS[:6],
        }
    )
    settings, key = load_settings(), fake_key()

    def run(temperature: float):
        opts = LLMOptions(
            base_url=server.base_url, api_key=key, timeout_s=5, temperature=temperature
        )
        return label_frame(
            df,
            labeler="llm",
            settings=settings,
            llm_options=opts,
            engine_config=EngineConfig(max_concurrency=2),
        )[1]

    cold = run(0.0)
    assert server.requests == 6
    warm = run(0.7)
    assert server.requests == 12 and warm.fingerprint != cold.fingerprint
    assert run(0.7).llm_calls == 0 and run(0.0).llm_calls == 0 and server.requests == 12


def test_taxonomy_edits_reach_the_prompt_digest(monkeypatch):
    """The in-memory taxonomy object (what a changed registry file loads into) is what's hashed."""
    base = LLMOptions().fingerprint_params()
    tax = taxonomy.DEFAULT
    monkeypatch.setattr(taxonomy, "DEFAULT", replace(tax, rules=(*tax.rules, "One more rule.")))
    assert LLMOptions().fingerprint_params()["system_prompt_sha256"] != base["system_prompt_sha256"]
    pizza = replace(tax.by_code["pizza"], examples=(*tax.by_code["pizza"].examples, "칼조네"))
    monkeypatch.setattr(
        taxonomy,
        "DEFAULT",
        replace(tax, industries=tuple(pizza if i.code == "pizza" else i for i in tax.industries)),
    )
    assert LLMOptions().fingerprint_params()["system_prompt_sha256"] != base["system_prompt_sha256"]


def test_the_key_is_in_neither_the_fingerprint_nor_the_ledger(
    cli_env, server, tmp_path, recsys_home
):
    src = tmp_path / "in.csv"
    make_input(src, 5)
    key = cli_env["OPENAI_API_KEY"]
    runs = [
        recsys(
            ["label", str(src), "-o", str(tmp_path / "o.csv"), "--labeler", "llm", "--no-progress"],
            cli_env,
            tmp_path,
        ),
        recsys(["label", str(src), "--dry-run", "--labeler", "llm"], cli_env, tmp_path),
        recsys(["ledger", "stats", "--json"], cli_env, tmp_path),
    ]
    for proc in runs:
        ok(proc)
        assert key not in proc.stdout + proc.stderr
    params = json.loads(runs[2].stdout)["current"]["params"]
    assert key not in json.dumps(params) and "api_key" not in params
    ledger = recsys_home / "labeling_ledger.sqlite"
    assert server.requests == 5
    for path in ledger.parent.glob("labeling_ledger.sqlite*"):  # the file and any -wal
        assert key.encode() not in path.read_bytes()
    con = sqlite3.connect(ledger)
    try:
        stored = [json.loads(p) for (p,) in con.execute("SELECT params FROM fingerprints")]
    finally:
        con.close()
    assert stored == [params]


# -- the dry run ----------------------------------------------------------------------------
def ledger_rows(path: Path) -> tuple[int, int]:
    con = sqlite3.connect(path)
    try:
        return (
            con.execute("SELECT count(*) FROM labels").fetchone()[0],
            con.execute("SELECT count(*) FROM fingerprints").fetchone()[0],
        )
    finally:
        con.close()


def test_a_dry_run_predicts_the_real_run_and_sends_and_writes_nothing(
    cli_env, server, tmp_path, recsys_home, monkeypatch
):
    """Cascade, duplicates, a half-filled ledger and 3 per call: the dry run's rows, ledger hits,
    calls and tokens are what the real run then does and pays."""
    env = {**cli_env, "RECSYS_LLM_ITEMS_PER_CALL": "3"}
    ledger = recsys_home / "labeling_ledger.sqlite"
    src = tmp_path / "in.csv"
    df = make_input(src, 40)
    # Names with no hint and menus the offline labeler is unsure of go to the LLM; repeat some.
    df.loc[::3, "menu"] = "세트 A, 세트 B"
    df.loc[1::9, "menu"] = "꼬치, 튀김"
    df = pd.concat([df, df.iloc[:6].assign(restaurant_id=[f"D{i}" for i in range(6)])])
    df.to_csv(src, index=False)
    out = tmp_path / "out.csv"

    cold = ok(
        recsys_here(["label", str(src), "--dry-run", "--labeler", "cascade"], env, monkeypatch)
    )
    assert not ledger.exists()  # a dry run never creates the ledger
    first = plan_of(cold.stdout)
    assert first["in_ledger"] == 0 and 0 < first["to_llm"] < first["rows"] == 46

    part = tmp_path / "part.csv"  # pay for part of it first
    df.iloc[:12].to_csv(part, index=False)
    ok(
        recsys_here(
            [
                "label",
                str(part),
                "-o",
                str(tmp_path / "part_out.csv"),
                "--labeler",
                "cascade",
                "--no-progress",
            ],
            env,
            monkeypatch,
        )
    )
    paid, rows_before = server.requests, ledger_rows(ledger)

    dry = ok(
        recsys_here(
            ["label", str(src), "--dry-run", "--labeler", "cascade", "-o", str(out)],
            env,
            monkeypatch,
        )
    )
    plan = plan_of(dry.stdout)
    assert server.requests == paid and ledger_rows(ledger) == rows_before
    assert not out.exists()
    assert plan["in_ledger"] > 0 and plan["to_llm"] > 0
    assert (
        dry.stdout.strip()
        .splitlines()[-1]
        .startswith(
            f"dry run: {plan['to_llm']} inputs would go to the LLM in {plan['calls']} calls"
        )
    )

    real = ok(
        recsys_here(
            ["label", str(src), "-o", str(out), "--labeler", "cascade", "--no-progress"],
            env,
            monkeypatch,
        )
    )
    calls = server.requests - paid
    m = re.search(
        r"labeled now (\d+), from ledger (\d+), offline (\d+); (\d+) calls, ([\d,]+)\+([\d,]+) tokens",
        real.stderr,
    )
    assert m, real.stderr
    now, from_ledger, offline, reported_calls = (int(m.group(i)) for i in range(1, 5))
    assert calls == reported_calls == plan["calls"]
    assert plan["to_llm"] <= calls * 3 < plan["to_llm"] + 3  # rows to the LLM = calls x per call
    assert (offline, from_ledger) == (plan["offline"], plan["in_ledger"])
    assert now == plan["rows"] - from_ledger  # offline rows count as labeled now
    # Tokens: the fake server counts with the same rule, so this checks the assembly of the
    # requests (system prompt, items, framing); the answer estimate is a full-length answer.
    tokens_in, tokens_out = (int(g.replace(",", "")) for g in m.groups()[4:])
    assert plan["tokens_in"] == pytest.approx(tokens_in, rel=0.01)
    assert plan["tokens_out"] >= tokens_out


def test_dry_run_without_a_key_or_an_output_still_plans(cli_env, tmp_path, recsys_home):
    env = {k: v for k, v in cli_env.items() if k != "OPENAI_API_KEY"}
    src = tmp_path / "in.csv"
    make_input(src, 8)
    proc = ok(recsys(["label", str(src), "--dry-run", "--labeler", "llm"], env, tmp_path))
    assert plan_of(proc.stdout)["to_llm"] == 8
    assert "OPENAI_API_KEY is not set" in proc.stdout
    proc = recsys(["label", str(src), "--labeler", "llm"], env, tmp_path)
    assert proc.returncode == 2 and "--output" in proc.stderr.splitlines()[-1]
    assert not (recsys_home / "labeling_ledger.sqlite").exists()


def test_dry_run_wall_time_uses_the_setting_then_the_ledger_median(
    cli_env, server, tmp_path, monkeypatch
):
    src = tmp_path / "in.csv"
    make_input(src, 10)
    dry = ["label", str(src), "--dry-run", "--labeler", "llm"]
    env = {**cli_env, "RECSYS_LLM_ASSUMED_LATENCY": "2", "RECSYS_LLM_MAX_CONCURRENCY": "4"}
    text = ok(recsys_here(dry, env, monkeypatch)).stdout
    # 10 calls, 4 in flight, 2 s each: 3 waves of 2 s.
    assert re.search(
        r"^estimated wall time\s+6 s\s+\(10 calls, 4 in flight, 2\.00 s per call: "
        r"RECSYS_LLM_ASSUMED_LATENCY; bound: concurrency\)",
        text,
        re.M,
    ), text
    text = ok(recsys_here(dry, {**env, "RECSYS_LLM_RPM": "60"}, monkeypatch)).stdout
    assert re.search(r"^estimated wall time\s+12 s\s+.*bound: rpm\)", text, re.M), text

    ok(
        recsys_here(
            [
                "label",
                str(tmp_path / "in.csv"),
                "-o",
                str(tmp_path / "o.csv"),
                "--labeler",
                "llm",
                "--no-progress",
            ],
            cli_env,
            monkeypatch,
        )
    )
    make_input(src, 5, offset=100)  # new inputs, same settings: the ledger knows their latency
    text = ok(recsys_here(dry, cli_env, monkeypatch)).stdout
    assert "per call: median of 10 calls in the ledger" in text, text


def test_wall_time_is_bounded_by_concurrency_rpm_or_tpm():
    assert estimate.wall_time(0, 8, 1.0) == (0.0, "concurrency")
    assert estimate.wall_time(17, 8, 1.5) == (4.5, "concurrency")  # 3 waves
    assert estimate.wall_time(120, 8, 1.0, rpm=60) == (121.0, "rpm")
    assert estimate.wall_time(10, 8, 1.0, tpm=6000, tokens=30_000) == (301.0, "tpm")


def test_output_estimate_honours_max_tokens():
    one, ten = estimate.output_tokens(1), estimate.output_tokens(10)
    assert 20 < one < ten and ten > 9 * one
    assert estimate.output_tokens(10, max_tokens=50) == 50
