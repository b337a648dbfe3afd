"""`recsys label` / `recsys ledger`: files in and out, signals, kills, concurrent runs, secrets."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import string
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from recsys_assets import taxonomy
from recsys_assets.labeling.commands import register
from tests.fake_openai_server import FakeOpenAI

REPO = Path(__file__).resolve().parents[1]
MENUS = [
    "짜장면, 짬뽕",
    "삼겹살, 항정살",
    "연어초밥, 우동",
    "페퍼로니 피자",
    "떡볶이, 튀김",
    "아메리카노, 빙수",
]


def make_input(path: Path, n: int = 60) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "restaurant_id": [f"R{i:03d}" for i in range(n)],
            "name": [f"가게{i}" for i in range(n)],
            "menu": [MENUS[i % len(MENUS)] for i in range(n)],
            "description": ["" if i % 3 else "동네 맛집" for i in range(n)],
            "region": ["서울"] * n,  # an extra input column that must survive
        }
    )
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return df


def fake_key() -> str:
    return "sk-test-" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(32)
    )


@pytest.fixture
def app():
    a = typer.Typer()
    register(a)
    return a


@pytest.fixture
def server():
    with FakeOpenAI(latency_ms=30) as srv:
        srv.keep_bodies = False
        yield srv


@pytest.fixture
def llm_env(recsys_home, server, monkeypatch):
    env = {
        "OPENAI_API_KEY": fake_key(),
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_MAX_CONCURRENCY": "4",
        "RECSYS_LLM_BACKOFF_BASE": "0.005",
        "RECSYS_LLM_TIMEOUT": "5",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, "PYTHONPATH": str(REPO)}


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "recsys_assets.labeling.commands", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ledger_ok_rows(path: Path) -> int:
    if not path.exists():
        return 0
    con = sqlite3.connect(path, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM labels WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0
    finally:
        con.close()


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll a condition (not a fixed sleep); fail if the process ends or time runs out first.

    The deadline is only a failure bound: generous, because a loaded 2-core machine can take tens
    of seconds to start a Python process and make its first calls."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"process ended early ({proc.returncode}): {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


# -- files in and out ------------------------------------------------------------------------
@pytest.mark.parametrize(("suffix_in", "suffix_out"), [(".csv", ".csv"), (".parquet", ".parquet")])
def test_offline_label_keeps_input_columns(app, recsys_home, tmp_path, suffix_in, suffix_out):
    src = tmp_path / f"in{suffix_in}"
    df = make_input(src, 30)
    out = tmp_path / f"out{suffix_out}"
    res = CliRunner().invoke(app, ["label", str(src), "-o", str(out), "--labeler", "offline"])
    assert res.exit_code == 0, res.output
    got = (
        pd.read_csv(out, dtype={"restaurant_id": str})
        if suffix_out == ".csv"
        else pd.read_parquet(out)
    )
    assert got["restaurant_id"].tolist() == df["restaurant_id"].tolist()
    assert list(got.columns)[:5] == list(df.columns)
    assert {"industry", "confidence", "source", "flagged"} <= set(got.columns)
    assert got["industry"].isin(taxonomy.INDUSTRY_CODES).all() and set(got["source"]) == {"offline"}
    assert got.loc[got["menu"] == "짜장면, 짬뽕", "industry"].eq("chinese").all()
    assert not (recsys_home / "labeling_ledger.sqlite").exists()  # offline needs no ledger


def test_missing_columns_and_bad_encoding_name_the_file(app, recsys_home, tmp_path):
    bad = tmp_path / "no_menu.csv"
    pd.DataFrame({"restaurant_id": [1], "name": ["a"]}).to_csv(bad, index=False)
    res = CliRunner().invoke(
        app, ["label", str(bad), "-o", str(tmp_path / "o.csv"), "--labeler", "offline"]
    )
    assert res.exit_code == 2 and "no_menu.csv" in res.output and "menu" in res.output
    cp949 = tmp_path / "cp949.csv"
    cp949.write_bytes("restaurant_id,name,menu\n1,치킨집,후라이드\n".encode("cp949"))
    res = CliRunner().invoke(
        app, ["label", str(cp949), "-o", str(tmp_path / "o.csv"), "--labeler", "offline"]
    )
    assert res.exit_code == 2 and "cp949.csv" in res.output and "UTF-8" in res.output
    res = CliRunner().invoke(app, ["label", str(cp949), "-o", str(tmp_path / "o.json")])
    assert res.exit_code == 2 and "o.json" in res.output
    assert not (tmp_path / "o.csv").exists()


# -- the LLM path through the CLI -----------------------------------------------------------
def test_llm_label_with_faults_exits_zero_and_flags(app, llm_env, server, tmp_path):
    server.configure(
        rates={"server_error": 0.15, "rate_limit": 0.15, "out_of_taxonomy": 0.1}, seed=3
    )
    src = tmp_path / "in.csv"
    make_input(src, 40)
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(
        app, ["label", str(src), "-o", str(out), "--labeler", "llm", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    got = pd.read_parquet(out)
    assert len(got) == 40 and got["industry"].isin(taxonomy.INDUSTRY_CODES).all()
    assert set(got["source"]) == {"llm"}
    assert (got.loc[got["flagged"], "industry"] == "other").all()
    assert "calls" in res.output and llm_env["OPENAI_API_KEY"] not in res.output


def test_auth_error_exits_fast_with_clear_message_and_no_key(app, llm_env, server, tmp_path):
    key = llm_env["OPENAI_API_KEY"]
    server.configure(api_key="sk-some-other-key-" + "q" * 20)
    src = tmp_path / "in.csv"
    make_input(src, 30)
    t0 = time.perf_counter()
    res = CliRunner().invoke(
        app, ["label", str(src), "-o", str(tmp_path / "o.csv"), "--labeler", "llm"]
    )
    assert time.perf_counter() - t0 < 10
    assert res.exit_code == 1
    assert "authentication failed" in res.output and "OPENAI_API_KEY" in res.output
    assert not (tmp_path / "o.csv").exists()
    assert server.requests <= 4
    exported = tmp_path / "ledger.csv"
    res2 = CliRunner().invoke(app, ["ledger", "export", str(exported)])
    assert res2.exit_code == 0
    ledger_bytes = (Path(os.environ["RECSYS_HOME"]) / "labeling_ledger.sqlite").read_bytes()
    for text in (res.output, res2.output, exported.read_text()):
        assert key not in text
    assert key.encode() not in ledger_bytes


def test_ledger_commands(app, llm_env, server, tmp_path):
    src = tmp_path / "in.csv"
    make_input(src, 12)
    assert (
        CliRunner()
        .invoke(
            app,
            ["label", str(src), "-o", str(tmp_path / "o.csv"), "--labeler", "llm", "--no-progress"],
        )
        .exit_code
        == 0
    )
    r = CliRunner().invoke(app, ["ledger", "stats"])
    assert r.exit_code == 0 and "12 rows" in r.output and "gpt-4o-mini" in r.output
    r = CliRunner().invoke(app, ["ledger", "export", str(tmp_path / "l.parquet"), "--status", "ok"])
    assert r.exit_code == 0 and len(pd.read_parquet(tmp_path / "l.parquet")) == 12
    r = CliRunner().invoke(app, ["ledger", "prune", "--status", "ok"])
    assert r.exit_code == 0 and "would delete 12" in r.output
    r = CliRunner().invoke(app, ["ledger", "prune"])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["ledger", "prune", "--older-than", "0m", "--yes"])
    assert r.exit_code == 0 and "deleted 12" in r.output
    r = CliRunner().invoke(app, ["ledger", "stats", "--json"])
    assert '"rows": 0' in r.output


# -- interruption, kills, concurrency (real processes) ------------------------------------------
def test_sigkill_mid_run_then_resume_pays_only_for_calls_in_flight(app, llm_env, server, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    make_input(src, 60)
    ledger = Path(os.environ["RECSYS_HOME"]) / "labeling_ledger.sqlite"
    proc = spawn(["label", str(src), "-o", str(out), "--labeler", "llm"], llm_env)
    wait_until(lambda: ledger_ok_rows(ledger) >= 15, proc)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    saved = ledger_ok_rows(ledger)
    assert 15 <= saved < 60  # really killed mid-run

    res = CliRunner().invoke(
        app, ["label", str(src), "-o", str(out), "--labeler", "llm", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out)) == 60
    # an uninterrupted run makes 60 calls; the kill may only waste the calls in flight (<= 4)
    assert 60 <= server.requests <= 60 + 4
    before = server.requests
    res = CliRunner().invoke(
        app, ["label", str(src), "-o", str(out), "--labeler", "llm", "--no-progress"]
    )
    assert res.exit_code == 0 and server.requests == before  # third run: no call at all


def test_sigint_stops_gracefully_and_resume_completes(app, llm_env, server, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    make_input(src, 60)
    ledger = Path(os.environ["RECSYS_HOME"]) / "labeling_ledger.sqlite"
    proc = spawn(["label", str(src), "-o", str(out), "--labeler", "llm"], llm_env)
    wait_until(lambda: ledger_ok_rows(ledger) >= 15, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "remaining — rerun the same command to resume" in err
    assert "NOT written" in err and not out.exists()
    done = ledger_ok_rows(ledger)
    assert 15 <= done < 60
    assert server.requests == done  # graceful: every call made was recorded

    proc = spawn(["label", str(src), "-o", str(out), "--labeler", "llm"], llm_env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert server.requests == 60  # no row paid twice
    assert len(pd.read_csv(out)) == 60


def test_two_processes_on_the_same_file_do_not_corrupt_the_ledger(llm_env, server, tmp_path):
    src = tmp_path / "in.csv"
    make_input(src, 60)
    procs = [
        spawn(
            [
                "label",
                str(src),
                "-o",
                str(tmp_path / f"out{i}.csv"),
                "--labeler",
                "llm",
                "--no-progress",
            ],
            llm_env,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    a, b = (pd.read_csv(tmp_path / f"out{i}.csv") for i in range(2))
    assert a["industry"].tolist() == b["industry"].tolist()
    con = sqlite3.connect(Path(os.environ["RECSYS_HOME"]) / "labeling_ledger.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*), count(DISTINCT input_key) FROM labels").fetchone() == (
        60,
        60,
    )
    assert con.execute("SELECT DISTINCT status FROM labels").fetchall() == [("ok",)]
    con.close()
    assert server.requests <= 120


def test_sigterm_is_a_graceful_stop_too(llm_env, server, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    make_input(src, 60)
    ledger = Path(os.environ["RECSYS_HOME"]) / "labeling_ledger.sqlite"
    proc = spawn(["label", str(src), "-o", str(out), "--labeler", "llm", "--no-progress"], llm_env)
    wait_until(lambda: ledger_ok_rows(ledger) >= 10, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "SIGTERM" in err and "remaining — rerun the same command to resume" in err
    assert server.requests == ledger_ok_rows(ledger) and not out.exists()


def test_openai_is_a_deprecated_alias_of_llm(app, llm_env, server, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "o.csv"
    make_input(src, 6)
    res = CliRunner().invoke(
        app, ["label", str(src), "-o", str(out), "--labeler", "openai", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "(llm)" in res.output and set(pd.read_csv(out)["source"]) == {"llm"}
    bad = CliRunner().invoke(app, ["label", str(src), "-o", str(out), "--labeler", "gpt"])
    assert bad.exit_code == 2 and "offline, llm, cascade or auto" in bad.output
