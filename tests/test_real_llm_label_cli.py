"""The real `recsys label` against real OpenAI-compatible CPU servers (issue 11 item 2).

Both llama-cpp-python's server and llama.cpp's `llama-server`, serving Qwen2.5-Coder-0.5B-Instruct
(Q4 GGUF) from the cache `.ci/llm_servers.sh` builds, with the CLI in a subprocess: `--labeler llm`
stopped by SIGTERM mid-run and resumed, then rerun for 0 calls; `--labeler cascade`; the cascade
when the server refuses the configured structured-output method (its offline rows are still
delivered); a model name the server does not serve. Calls are counted in the server's own log and
compared with the ledger's attempts, so "no finished call paid twice" is measured, not assumed.

Only the shape of an answer is asserted, never the 0.5B model's industry (it is not reliable).
Kept small (4 rows, 1 of them for the cascade's LLM) so the suite fits in minutes on 2 cores.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets import taxonomy
from recsys_assets.labeling.offline import OfflineLabeler
from tests.llm_servers import LlmServer

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
# 3 rows the offline labeler is sure of (cascade margin >= 0.35) and 1 it is not (sent to the LLM).
MENUS = ["후라이드치킨, 양념치킨", "오늘의 메뉴", "짜장면, 짬뽕, 탕수육", "삼겹살, 목살"]
N_UNSURE = 1
# What `auto` settles on with each server (tests/test_real_llm_servers.py has the full matrix).
NEGOTIATED = {
    "llama-cpp-python": "tool (auto; refused: json_schema: HTTP 500 response_format.type: Input "
    "should be 'text' or 'json_object')",
    "llama-server": "json_schema (auto)",
}
# llama-cpp-python refuses json_schema outright (no tokens spent). llama-server's counterpart, a
# forced tool call answered without tool_calls, costs a full cold call on a CPU: the capability
# matrix (test_real_llm_servers.py) shows it, tests/test_structured_output.py the CLI's handling.
REFUSED_JSON_SCHEMA = (
    "RECSYS_LLM_STRUCTURED=json_schema (response_format json_schema): HTTP 500 "
    "response_format.type: Input should be 'text' or 'json_object'"
)
CALL_DEADLINE_S = 1800  # a whole run on a busy 2-core machine; typically a minute or two


def write_input(path: Path) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "restaurant_id": [f"R{i}" for i in range(len(MENUS))],
            "name": [f"가게{i}" for i in range(len(MENUS))],
            "menu": MENUS,
        }
    )
    df.to_csv(path, index=False)
    return df


def env_for(server: LlmServer, home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RECSYS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "OPENAI_API_KEY": "sk-local-unused",
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_MODEL": server.model,
        # concurrency <= slots (docs/labeling.md: llama-cpp-python has one); a CPU call can take
        # minutes on a busy machine
        "RECSYS_LLM_MAX_CONCURRENCY": str(1 if server.kind == "llama-cpp-python" else server.slots),
        "RECSYS_LLM_TIMEOUT": "900",
        **extra,
    }


def label_args(src: Path, out: Path, labeler: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "recsys_assets.cli",
        "label",
        str(src),
        "-o",
        str(out),
        "--labeler",
        labeler,
        "--no-progress",
    ]


def recsys_label(
    env: dict[str, str], src: Path, out: Path, labeler: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        label_args(src, out, labeler),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=CALL_DEADLINE_S,
        check=False,
    )


def last_line(text: str) -> str:
    return [ln for ln in text.strip().splitlines() if ln.strip()][-1]


def ledger_rows(home: Path) -> list[tuple[str, int]]:
    """(status, attempts) of every ledger row (attempts = the calls paid for that row)."""
    path = home / "labeling_ledger.sqlite"
    if not path.exists():
        return []
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT status, attempts FROM labels").fetchall()
    finally:
        con.close()


def summary(stderr: str) -> tuple[int, int, int]:
    """(labeled now, from ledger, calls) from `recsys label`'s summary."""
    m = re.search(r"labeled now (\d+), from ledger (\d+), offline \d+; (\d+) calls", stderr)
    assert m, stderr
    return int(m[1]), int(m[2]), int(m[3])


def assert_llm_rows_answered(got: pd.DataFrame) -> None:
    assert got["label_status"].isin(["ok", "invalid"]).all(), got
    assert got["industry"].isin(taxonomy.INDUSTRY_CODES).all()
    assert got["confidence"].between(0, 1).all()


def test_llm_sigterm_resume_then_a_rerun_pays_nothing(real_llm_server: LlmServer, tmp_path):
    server, home = real_llm_server, tmp_path / "home"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_input(src)
    env = env_for(server, home)
    start = server.log_offset()

    proc = subprocess.Popen(
        label_args(src, out, "llm"),
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + CALL_DEADLINE_S
    while not [r for r in ledger_rows(home) if r[0] in ("ok", "invalid")]:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no answer recorded in time"
        time.sleep(0.5)  # poll interval: the loop waits for the ledger condition
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=CALL_DEADLINE_S)
    assert proc.returncode == 130, err
    done = len(ledger_rows(home))
    assert 1 <= done < len(MENUS), err  # the calls in flight finished and were recorded
    assert f"interrupted: {done} labeled, {len(MENUS) - done} remaining" in err
    assert not out.exists()

    mid = server.log_offset()
    res = recsys_label(env, src, out, "llm")  # resume
    assert res.returncode == 0, res.stderr
    now, reused, calls = summary(res.stderr)
    assert (now, reused) == (len(MENUS) - done, done)
    assert calls == sum(server.chat_calls(mid))  # the run's own count is what the server saw
    assert f"structured output: {NEGOTIATED[server.kind]}" in res.stderr
    got = pd.read_csv(out)
    assert got["restaurant_id"].tolist() == [f"R{i}" for i in range(len(MENUS))]
    assert_llm_rows_answered(got)
    assert set(got["source"]) == {"llm"}
    # No finished call paid twice: every call the server answered is one ledger attempt.
    rows = ledger_rows(home)
    answered, refused = server.chat_calls(start)
    assert len(rows) == len(MENUS) and answered == sum(a for _, a in rows)
    if server.kind == "llama-cpp-python":
        assert refused == 2  # each run's json_schema probe, refused at once, never retried

    before = server.log_offset()
    res = recsys_label(env, src, out, "llm")  # a rerun: everything is in the ledger
    assert res.returncode == 0, res.stderr
    assert summary(res.stderr) == (0, len(MENUS), 0)
    assert server.chat_calls(before) == (0, 0)
    assert "GET /v1/models" not in server.log_path.read_text(errors="replace")[before:]


def test_cascade_sends_only_the_rows_the_lexicon_is_unsure_of(real_llm_server: LlmServer, tmp_path):
    server, home = real_llm_server, tmp_path / "home"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df = write_input(src)
    start = server.log_offset()
    res = recsys_label(env_for(server, home), src, out, "cascade")
    assert res.returncode == 0, res.stderr
    now, reused, _ = summary(res.stderr)
    assert (now, reused) == (len(MENUS), 0) and f"offline {len(MENUS) - N_UNSURE};" in res.stderr
    got = pd.read_csv(out)
    llm = got["source"] == "cascade_llm"
    assert llm.sum() == N_UNSURE and (got.loc[~llm, "source"] == "cascade_offline").all()
    offline = [
        p.industry
        for p in OfflineLabeler().predict_many(
            [(n, m, None) for n, m in zip(df["name"], df["menu"], strict=True)]
        )
    ]
    assert got.loc[~llm, "industry"].tolist() == [
        o for o, u in zip(offline, llm, strict=True) if not u
    ]
    assert_llm_rows_answered(got[llm])
    rows = ledger_rows(home)
    assert len(rows) == N_UNSURE and server.chat_calls(start)[0] == sum(a for _, a in rows)


@pytest.mark.parametrize("real_llm_server", ["llama-cpp-python"], indirect=True)
def test_cascade_delivers_its_offline_rows_when_the_server_refuses_the_method(
    real_llm_server: LlmServer, tmp_path
):
    server, home = real_llm_server, tmp_path / "home"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_input(src)
    start = server.log_offset()
    env = env_for(server, home, RECSYS_LLM_STRUCTURED="json_schema")
    res = recsys_label(env, src, out, "cascade")
    assert res.returncode == 3, res.stderr
    assert last_line(res.stderr).startswith(
        f"error: {N_UNSURE} of {len(MENUS)} row(s) got no answer from the model (the LLM part "
        f"stopped: the server refused {REFUSED_JSON_SCHEMA}. Set RECSYS_LLM_STRUCTURED=auto"
    ), res.stderr
    got = pd.read_csv(out)
    llm = got["source"] == "cascade_llm"
    assert (got.loc[~llm, "label_status"] == "ok").sum() == len(MENUS) - N_UNSURE
    assert (got.loc[llm, "label_status"] == "unanswered").all() and got.loc[llm, "flagged"].all()
    assert server.chat_calls(start) == (0, 1)  # the one refused probe, never retried
    assert ledger_rows(home) == []


def test_a_model_the_server_does_not_serve_is_refused_before_any_call(
    real_llm_server: LlmServer, tmp_path
):
    """llama-cpp-python would answer as `gpt-4o-mini` (it echoes any name); /v1/models says no."""
    server, home = real_llm_server, tmp_path / "home"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_input(src)
    start = server.log_offset()
    res = recsys_label(env_for(server, home, RECSYS_LLM_MODEL="gpt-4o-mini"), src, out, "llm")
    assert res.returncode == 1, res.stderr
    assert last_line(res.stderr).startswith(
        f"error: the server at {server.base_url} does not serve model 'gpt-4o-mini' "
        f"(RECSYS_LLM_MODEL); its /models lists: {server.model}. Set RECSYS_LLM_MODEL to one of "
        "them."
    ), res.stderr
    assert server.chat_calls(start) == (0, 0) and not out.exists()
