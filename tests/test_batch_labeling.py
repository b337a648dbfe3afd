"""Batch mode (`recsys label --mode batch`) end to end against the fake server's Batch API:
resume after kill -9 at every stage with no row submitted twice, partial failures, expiry, the
batch price, cached-token accounting and the stable prompt prefix."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets.labeling import llm
from recsys_assets.labeling.batch import BatchConfig, BatchRunner, openai_client
from recsys_assets.labeling.engine import PendingRow
from recsys_assets.labeling.ledger import Ledger, fingerprint, input_key
from recsys_assets.labeling.llm import LabelItem, LLMLabeler, LLMOptions
from recsys_assets.labeling.service import label_frame
from tests.fake_openai_server import FakeOpenAI, keyword_label

REPO = Path(__file__).resolve().parents[1]
MENUS = ["짜장면, 짬뽕", "삼겹살, 항정살", "연어초밥, 우동", "페퍼로니 피자", "떡볶이, 튀김"]
KEY = "sk-test-batch-0123456789abcdef"
N = 12


def make_input(path: Path, n: int = N) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "restaurant_id": [f"R{i:03d}" for i in range(n)],
            "name": [f"가게{i}" for i in range(n)],
            "menu": [MENUS[i % len(MENUS)] + f" {i}" for i in range(n)],
        }
    )
    df.to_csv(path, index=False)
    return df


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY) as srv:
        srv.keep_bodies = False
        yield srv


@pytest.fixture
def env(recsys_home, server, monkeypatch):
    values = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_BATCH_POLL": "0.02",
        "RECSYS_LLM_TIMEOUT": "10",
        "RECSYS_LLM_STRUCTURED": "json_schema",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, "PYTHONPATH": str(REPO)}


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "recsys_assets.labeling.commands", "label", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ledger_rows(home: Path, sql: str) -> list[tuple]:
    path = home / "labeling_ledger.sqlite"
    if not path.exists():
        return []
    con = sqlite3.connect(path, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()


def wait_for(event: threading.Event, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait on the server's 'request arrived' event; fail at once if the process ended first."""
    deadline = time.monotonic() + timeout
    while not event.wait(0.02):
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"process ended early ({proc.returncode}): {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the request never arrived")


def run_to_end(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = spawn(args, env)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_labeled_once(out: Path, df: pd.DataFrame, server: FakeOpenAI, home: Path) -> None:
    got = pd.read_csv(out, dtype={"restaurant_id": str})
    assert got["restaurant_id"].tolist() == df["restaurant_id"].tolist()
    assert (got["label_status"] == "ok").all()
    expected = [keyword_label(n, m) for n, m in zip(df["name"], df["menu"], strict=True)]
    assert got["industry"].tolist() == expected
    counts = server.submitted
    assert len(counts) == len(df)  # one custom_id per restaurant (items_per_call 1)
    assert max(counts.values()) == 1, f"submitted twice: {counts}"
    rows = ledger_rows(home, "SELECT status, mode, attempts FROM labels")
    assert sorted(rows) == [("ok", "batch", 1)] * len(df)
    open_ = ledger_rows(
        home, "SELECT count(*) FROM batches WHERE state NOT IN ('closed', 'abandoned')"
    )
    assert open_ == [(0,)]


# -- kill -9 at each stage, then resume --------------------------------------------------------
# (stage held, held once the server acted on it, the batch state the ledger shows at the kill,
#  the ok rows already in the ledger at the kill). One run is killed at each stage in turn; each
# rerun resumes what the killed one left (one scenario: a subprocess start costs seconds).
KILLS = {
    "before upload": ("upload", False, ["pending"], 0),
    "after upload": ("create", False, ["abandoned", "uploaded"], 0),
    "after batch creation": ("create", True, ["abandoned", "uploaded"], 0),
    "while polling": ("poll", False, ["abandoned", "submitted"], 0),
    "while writing results": ("content", False, ["abandoned", "submitted"], N - 3),
}


@pytest.mark.heavy
def test_kill_9_at_every_stage_resumes_without_submitting_twice(env, server, recsys_home, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df = make_input(src)
    server.batch.batch_fail_first = 3  # an error file, so results are written in two steps
    args = [str(src), "-o", str(out), "--labeler", "llm", "--mode", "batch", "--no-progress"]
    for name, (stage, after, states, ok_rows) in KILLS.items():
        # "while writing results": the error file's download, after the output file's answers
        # were committed (the first content request is the output file)
        hold = server.hold(stage, after=after, nth=2 if stage == "content" else 1)
        proc = spawn(args, env)
        wait_for(hold.arrived, proc)
        got = [
            r[0] for r in ledger_rows(recsys_home, "SELECT state FROM batches ORDER BY created_at")
        ]
        assert got == states, name
        ok = ledger_rows(recsys_home, "SELECT count(*) FROM labels WHERE status = 'ok'")
        assert ok == [(ok_rows,)], name
        proc.kill()
        proc.wait(timeout=10)
        hold.release()
        assert not out.exists()
        assert max(server.submitted.values(), default=1) == 1, name
    res = run_to_end(args, env)
    assert res.returncode == 0, res.stderr
    got = pd.read_csv(out, dtype={"restaurant_id": str})
    assert got["restaurant_id"].tolist() == df["restaurant_id"].tolist()
    assert (got["label_status"] == "ok").all()
    expected = [keyword_label(n, m) for n, m in zip(df["name"], df["menu"], strict=True)]
    assert got["industry"].tolist() == expected
    counts = server.submitted
    assert len(counts) == N  # one custom_id per restaurant (items_per_call 1)
    # one batch for all (adopted after the kill that hid its id), one for the 3 failed rows
    assert len(server.batch.batches) == 2
    twice = sorted(c for c, n in counts.items() if n == 2)
    assert twice == sorted(server.batch._failed_once) and max(counts.values()) == 2
    rows = ledger_rows(recsys_home, "SELECT status, mode FROM labels")
    assert sorted(rows) == [("ok", "batch")] * N
    open_ = "SELECT count(*) FROM batches WHERE state NOT IN ('closed', 'abandoned')"
    assert ledger_rows(recsys_home, open_) == [(0,)]
    assert "at the batch price" in res.stderr


def test_expired_batch_resubmits_only_the_unfinished_rows(env, server, recsys_home):
    df = make_input(recsys_home / "in.csv")
    server.batch.batch_expire, server.batch.batch_expire_done = 1, 5
    got, rep = label_frame(df, labeler="llm", mode="batch")
    assert (got["label_status"] == "ok").all() and rep.remaining == 0
    assert sorted(server.submitted.values()) == [1] * 5 + [2] * (N - 5)  # the 7 unfinished again
    notes = ledger_rows(recsys_home, "SELECT note FROM batches ORDER BY created_at")
    assert notes[0][0].startswith("expired") and notes[1] == (None,)


# -- in-process: prices, cached tokens, shared answers ---------------------------------------
def _options(server: FakeOpenAI, **kw) -> LLMOptions:
    return LLMOptions(
        model="gpt-4o-mini", base_url=server.base_url, api_key=KEY, structured="json_schema", **kw
    )


def _rows(n: int) -> list[PendingRow]:
    return [
        PendingRow(input_key(f"가게{i}", f"짬뽕 {i}"), f"가게{i}", f"짬뽕 {i}", None)
        for i in range(n)
    ]


def test_batch_cost_is_the_batch_price_and_counts_cached_tokens(server, tmp_path):
    server.cache_min_tokens = 256  # the fake's prompt is ~900 tokens: below OpenAI's 1024
    opts = _options(server, batch_price_factor=0.5, cached_price_factor=0.25)
    labeler = LLMLabeler(opts)
    fp = fingerprint(opts.fingerprint_params())
    with Ledger(tmp_path / "l.sqlite") as ledger:
        runner = BatchRunner(openai_client(opts), ledger, fp, labeler, BatchConfig(poll_s=0.01))
        stats = runner.run(_rows(5))
        rows = list(ledger.iter_rows())
    assert stats.ok == 5 and stats.rows_remaining == 0
    # the first request's prefix is new, the 4 others hit the cache
    assert stats.tokens_cached > 0 and sum(r["tokens_cached"] > 0 for r in rows) == 4
    full = llm.estimate_cost(opts.model, stats.tokens_in, stats.tokens_out)
    cached_part = stats.tokens_cached * 0.15 / 1e6 * (1 - 0.25)  # gpt-4o-mini: $0.15 / 1M in
    assert stats.cost_usd == pytest.approx((full - cached_part) * 0.5)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(stats.cost_usd)
    assert {r["mode"] for r in rows} == {"batch"}


def test_online_and_batch_share_answers_under_one_fingerprint(env, server, recsys_home):
    df = pd.DataFrame(
        {"restaurant_id": ["A", "B", "C"], "name": ["x", "y", "z"], "menu": MENUS[:3]}
    )
    online, rep1 = label_frame(df, labeler="llm", mode="online")
    assert rep1.labeled_this_run == 3
    bodies_online = server.requests
    batch, rep2 = label_frame(df, labeler="llm", mode="batch")
    assert rep2.reused_from_ledger == 3 and rep2.fingerprint == rep1.fingerprint
    assert server.submitted == {} and server.requests == bodies_online  # nothing sent again
    assert batch["industry"].tolist() == online["industry"].tolist()


def test_batch_request_body_is_the_online_request(server):
    """The line a batch carries is byte for byte what the online call POSTs."""
    server.keep_bodies = True
    opts = _options(server)
    labeler = LLMLabeler(opts)
    items = [LabelItem("r1", "가게", "짬뽕")]
    labeler.label(items)
    sent = server.bodies[-1]
    assert labeler.request_body(items) == sent


def test_stable_prompt_prefix_is_byte_identical_and_rows_come_last(server):
    """Providers cache the longest shared prefix: rules, taxonomy and examples must come first and
    never change between calls; only the restaurants (the last message) differ."""
    labeler = LLMLabeler(_options(server, items_per_call=2))
    a = labeler.request_body(
        [LabelItem("r1", "큐엑스식당", "큐엑스메뉴"), LabelItem("r2", "빵집", "")]
    )
    b = labeler.request_body([LabelItem("r1", "횟집", "모둠회"), LabelItem("r2", "x", "")])
    assert [m["role"] for m in a["messages"]] == ["system", "user"]
    assert a["messages"][0]["content"].encode() == b["messages"][0]["content"].encode()
    assert a["messages"][1] != b["messages"][1]
    stable = len(json.dumps(a["messages"][0], ensure_ascii=False))
    ja, jb = (json.dumps(x["messages"], ensure_ascii=False) for x in (a, b))
    assert ja[:stable] == jb[:stable] and ja != jb  # the request text differs only after it
    for text in ("큐엑스식당", "큐엑스메뉴"):
        assert text not in a["messages"][0]["content"]  # no restaurant text in the stable part
        assert text in a["messages"][1]["content"]


def test_rows_failing_every_round_stay_failed(server, tmp_path):
    server.batch.batch_fail_first = 10**6  # every request fails the first time it is seen
    opts = _options(server)
    fp = fingerprint(opts.fingerprint_params())
    with Ledger(tmp_path / "l.sqlite") as ledger:
        runner = BatchRunner(
            openai_client(opts),
            ledger,
            fp,
            LLMLabeler(opts),
            BatchConfig(poll_s=0.01, max_rounds=1),
        )
        stats = runner.run(_rows(4))
        statuses = [r["status"] for r in ledger.iter_rows()]
    assert stats.failed == 4 and stats.ok == 0 and stats.rows_remaining == 0
    assert statuses == ["failed"] * 4 and stats.failures_by_reason["batch_error"] == 4


def test_online_path_records_cached_tokens(env, server, recsys_home, monkeypatch):
    server.cache_min_tokens = 256
    monkeypatch.setenv("RECSYS_LLM_MAX_CONCURRENCY", "1")
    df = pd.DataFrame({"restaurant_id": list("ABCD"), "name": list("wxyz"), "menu": MENUS[:4]})
    _, rep = label_frame(df, labeler="llm", mode="online")
    assert rep.tokens_cached > 0 and rep.tokens_cached < rep.tokens_in
    cached = ledger_rows(recsys_home, "SELECT sum(tokens_cached), min(mode) FROM labels")
    assert cached == [(rep.tokens_cached, "online")]


def test_asset_run_config_mode_batch(recsys_home, server, tmp_path, monkeypatch):
    """The Dagster config option: restaurant_industry with mode=batch asks only the Batch API."""
    import dagster as dg

    from recsys_assets.config import load_settings
    from recsys_assets.definitions import build_defs
    from recsys_assets.sample_data import generate_sample

    data = tmp_path / "data"
    files = generate_sample(data, n_restaurants=20, seed=3, fmt="csv")
    for k, v in {
        "RECSYS_DATA_DIR": str(data),
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LABELER": "llm",
        "RECSYS_LLM_BATCH_POLL": "0.02",
        "RECSYS_LLM_STRUCTURED": "json_schema",
    }.items():
        monkeypatch.setenv(k, v)
    result = (
        build_defs(load_settings())
        .resolve_job_def("rebuild_job")
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[dg.AssetKey("restaurants"), dg.AssetKey("restaurant_industry")],
            run_config={"ops": {"restaurant_industry": {"config": {"mode": "batch"}}}},
        )
    )
    assert result.success
    distinct = pd.read_csv(files.restaurants)[["name", "menu", "description"]].drop_duplicates()
    assert server.requests == 0  # no online call
    assert len(server.submitted) == len(distinct) and max(server.submitted.values()) == 1
    [mat] = result.asset_materializations_for_node("restaurant_industry")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["mode"] == "batch" and meta["labeled_this_run"] == 20


def test_a_ledger_of_the_previous_schema_gains_the_new_columns(tmp_path):
    """Opening a version-2 ledger (no tokens_cached, mode, batch tables) keeps its rows and adds
    them: no answer is lost or paid again after the upgrade."""
    from recsys_assets.labeling.ledger import LedgerRecord

    path = tmp_path / "old.sqlite"
    with Ledger(path) as led:
        led.record("fp", [LedgerRecord("k1", "ok", "korean", 0.9)], model="m", prompt_version="v")
    con = sqlite3.connect(path)
    for sql in (
        "ALTER TABLE labels DROP COLUMN tokens_cached",
        "ALTER TABLE labels DROP COLUMN mode",
        "DROP TABLE batch_rows",
        "DROP TABLE batches",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
    ):
        con.execute(sql)
    con.commit()
    con.close()
    with Ledger(path) as led:
        assert led.lookup("fp", ["k1"])["k1"].industry == "korean"
        led.record(
            "fp",
            [LedgerRecord("k2", "ok", "pizza", 0.8, tokens_in=10, tokens_cached=4, mode="batch")],
            model="m",
            prompt_version="v",
        )
        rows = {r["input_key"]: r for r in led.iter_rows()}
        stats = led.stats()
    assert (rows["k1"]["mode"], rows["k1"]["tokens_cached"]) == ("online", 0)
    assert (rows["k2"]["mode"], rows["k2"]["tokens_cached"]) == ("batch", 4)
    assert stats["tokens_cached"] == 4 and set(stats["by_mode"]) == {"online", "batch"}


def test_dry_run_prices_batch_mode_at_the_batch_price(
    env, server, recsys_home, tmp_path, monkeypatch
):
    import typer
    from typer.testing import CliRunner

    from recsys_assets.labeling.commands import register

    monkeypatch.setenv("RECSYS_LLM_PRICE_IN", "150")  # x1000: a cost the 4 printed decimals hold
    monkeypatch.setenv("RECSYS_LLM_PRICE_OUT", "600")
    app = typer.Typer()
    register(app)
    src = tmp_path / "in.csv"
    make_input(src)

    def cost(mode: str) -> float:
        res = CliRunner().invoke(
            app, ["label", str(src), "--dry-run", "--labeler", "llm", "--mode", mode]
        )
        assert res.exit_code == 0, res.output
        line = next(x for x in res.output.splitlines() if "estimated cost" in x)
        return float(line.split("$")[1].split()[0])

    assert cost("batch") == pytest.approx(cost("online") * 0.5, rel=1e-3)
    assert server.requests == 0 and server.submitted == {}
