"""The ledger on a real PostgreSQL server (a throwaway cluster from tests/pg_server.py).

Skipped, with the reason, only when no server can be started here (no binaries, no postgres
user, no psycopg). The backend-independent contract tests of test_ledger.py run again here: this
module's `store_url` fixture hands them a fresh PostgreSQL database instead of a SQLite file.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from recsys_assets.config import load_settings
from recsys_assets.labeling.engine import EngineConfig
from recsys_assets.labeling.ledger import Ledger, LedgerError, LedgerRecord, input_key
from recsys_assets.labeling.llm import LLMOptions
from recsys_assets.labeling.service import label_frame
from tests.pg_server import PgCluster, PgUnavailable
from tests.test_ledger import (  # noqa: F401  (collected again, on PostgreSQL)
    REPO,
    assert_no_key_paid_twice,
    assert_shared_block_was_split,
    claims_rows,
    ledger,
    open_ledger,
    run_two_workers,
    test_a_dead_local_claimant_is_taken_over_at_once_a_live_one_is_not,
    test_a_live_claim_keeps_peers_off_until_answered_failed_or_released,
    test_an_expired_lease_is_taken_over,
    test_answers_recorded_without_a_claim_still_block_claims,
    test_claims_of_a_lost_ledger_of_this_process_are_taken_over,
    test_close_hands_back_unfinished_claims,
    test_final_answers_are_never_overwritten_and_failed_rows_are_upgraded,
    test_other_fingerprints_stay_queryable,
    test_pruned_answers_can_be_claimed_again,
    test_renew_extends_only_ones_own_lease,
    test_stats_count_live_claims,
    test_stats_export_and_prune,
    test_stats_name_the_current_fingerprint_and_count_what_it_would_pay_again,
    test_the_engine_waits_for_keys_a_peer_holds_and_reuses_its_answers,
    worker_env,
)

_db_names = itertools.count()


@pytest.fixture(scope="session")
def pg():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg (psycopg[binary]) is not installed: no PostgreSQL driver")
    cluster = PgCluster()
    try:
        cluster.start()
    except PgUnavailable as exc:
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def store_url(pg) -> str:
    """A fresh, empty database per test (the URL carries the cluster's password)."""
    return pg.create_database(f"t{os.getpid()}_{next(_db_names)}")


def test_round_trip_keeps_types_and_never_shows_the_password(open_ledger, pg, tmp_path):
    led = open_ledger()
    assert led.dialect == "postgresql" and led.path is None
    k = input_key("가게", "짜장면, 짬뽕")
    led.register_fingerprint("fp", {"model": "gpt-4o-mini", "prompt_version": "v1"})
    led.register_fingerprint("fp", {"model": "ignored: first registration wins"})
    led.record(
        "fp",
        [
            LedgerRecord(
                k,
                "ok",
                "chinese",
                0.123456789,
                reason="짜장면",
                raw_response='{"industry":"chinese"}',
                tokens_in=901,
                tokens_out=17,
                cost_usd=0.000123456789,
                latency_ms=12.5,
            )
        ],
        model="gpt-4o-mini",
        prompt_version="v1",
    )
    got = led.lookup("fp", [k, "missing"])
    assert list(got) == [k] and got[k].industry == "chinese"
    assert got[k].confidence == pytest.approx(
        0.123456789, abs=1e-12
    )  # double, not PG's 4-byte REAL
    row = next(led.iter_rows())
    assert row["reason"] == "짜장면" and row["tokens_in"] == 901
    assert row["cost_usd"] == pytest.approx(0.000123456789, abs=1e-15)
    st = led.stats()
    assert st["groups"][0]["params"] == {"model": "gpt-4o-mini", "prompt_version": "v1"}
    assert led.integrity_check() == "ok"
    for text in (str(led), repr(led), st["url"], st["path"]):
        assert pg.password not in text and "***" in text

    # a wrong password or a dead server: a clear error, never the password
    bad = pg.url("postgres").replace(pg.password, "wrong-" + pg.password)
    with pytest.raises(LedgerError) as info:
        Ledger.from_url(bad)
    assert "wrong-" not in str(info.value) and pg.password not in str(info.value)
    assert "password authentication failed" in str(info.value)
    with pytest.raises(LedgerError, match="cannot open the labeling ledger"):
        Ledger.from_url(f"postgresql://u:{pg.password}@127.0.0.1:1/x", busy_timeout_ms=2000)


def test_a_bare_postgresql_url_uses_psycopg_3(pg, store_url):
    with Ledger.from_url(store_url.replace("postgresql+psycopg://", "postgresql://")) as led:
        assert led.url.startswith("postgresql+psycopg://")
        assert led.count() == 0


def test_ledger_cli_commands_work_on_postgresql(recsys_home, store_url, monkeypatch, tmp_path):
    import typer
    from typer.testing import CliRunner

    from recsys_assets.labeling.commands import register

    app = typer.Typer()
    register(app)
    with Ledger.from_url(store_url) as led:
        led.register_fingerprint("fpA", {"model": "gpt-4o-mini", "prompt_version": "v1"})
        led.record(
            "fpA",
            [
                LedgerRecord(input_key(str(i), "m"), "ok", "korean", 0.9, tokens_in=10)
                for i in range(4)
            ],
            model="gpt-4o-mini",
            prompt_version="v1",
        )
    monkeypatch.setenv("RECSYS_LEDGER_URL", store_url)
    password = store_url.split(":")[2].split("@")[0]
    r = CliRunner().invoke(app, ["ledger", "stats"])
    assert r.exit_code == 0 and "4 rows" in r.output and password not in r.output
    r = CliRunner().invoke(app, ["ledger", "export", str(tmp_path / "l.csv")])
    assert r.exit_code == 0 and len(pd.read_csv(tmp_path / "l.csv")) == 4
    r = CliRunner().invoke(app, ["ledger", "prune", "--fingerprint", "fpA", "--yes"])
    assert r.exit_code == 0 and "deleted 4" in r.output
    monkeypatch.setenv("RECSYS_LEDGER_URL", store_url.replace(password, "nope"))
    r = CliRunner().invoke(app, ["ledger", "stats"])
    assert r.exit_code == 2 and "cannot open" in r.output and password not in r.output


def test_two_worker_processes_never_pay_twice_through_postgresql(worker_env, store_url, tmp_path):
    server, env = worker_env
    errs = run_two_workers(tmp_path, server, {**env, "RECSYS_LEDGER_URL": store_url})
    assert_no_key_paid_twice(tmp_path, server, errs, distinct=80)
    password = store_url.split(":")[2].split("@")[0]
    assert not any(password in e for e in errs)
    with Ledger.from_url(store_url) as led:
        assert led.count(status="ok") == 80 and led.count() == 80
        assert led.stats()["in_progress"] == 0
    assert_shared_block_was_split(store_url, tmp_path)


def test_lease_expiry_lets_a_second_worker_take_over_a_killed_workers_keys(
    recsys_home, worker_env, store_url, tmp_path, monkeypatch
):
    """Worker A runs on "another host" (so only its lease can end its claims), claims a key,
    sends its call (a run's first call goes out alone: it settles the structured-output method)
    and is SIGKILLed before any answer; worker B then labels everything."""
    server, env = worker_env
    server.configure(latency_ms=60_000)  # A's calls never come back
    df = pd.DataFrame(
        {
            "restaurant_id": [f"R{i}" for i in range(8)],
            "name": [f"가게{i}" for i in range(8)],
            "menu": ["짜장면", "삼겹살", "초밥", "피자", "떡볶이", "커피", "족발", "파스타"],
        }
    )
    src = tmp_path / "in.csv"
    df.to_csv(src, index=False)
    worker_a = (
        "import sys, recsys_assets.labeling.ledger as L; L._HOST = 'another-host.example'; "
        "from recsys_assets.labeling.commands import main; "
        f"sys.argv = ['recsys', 'label', {str(src)!r}, '-o', {str(tmp_path / 'a.csv')!r}, "
        "'--labeler', 'llm', '--no-progress']; main()"
    )
    lease_s = 1.5
    proc = subprocess.Popen(
        [sys.executable, "-c", worker_a],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "RECSYS_LEDGER_URL": store_url, "RECSYS_LEDGER_LEASE_SECONDS": str(lease_s)},
    )
    keys = [input_key(n, m) for n, m in zip(df["name"], df["menu"], strict=True)]
    try:
        deadline = time.monotonic() + 30
        while server.requests < 1:  # poll the condition: A has sent its first call
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "worker A never sent its calls"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    held = claims_rows(store_url)
    assert len(held) == 1 and {r.state for r in held} == {"claimed"}
    assert all(r.owner.startswith("another-host.example:") for r in held)
    expiry = max(r.lease_until for r in held)

    server.configure(latency_ms=5)
    monkeypatch.setenv("RECSYS_LEDGER_URL", store_url)
    out, rep = label_frame(
        df,
        labeler="llm",
        settings=load_settings(),
        llm_options=LLMOptions(base_url=server.base_url, api_key=env["OPENAI_API_KEY"]),
        engine_config=EngineConfig(max_concurrency=4, backoff_base_s=0.005),
    )
    assert len(out) == 8 and rep.remaining == 0 and not out["flagged"].any()
    assert rep.labeled_this_run == 8
    assert server.requests == 1 + 8  # A's lost call, then every key once, by B
    after = {r.input_key: r for r in claims_rows(store_url)}
    assert set(after) == set(keys) and {r.state for r in after.values()} == {"done"}
    for r in held:  # B answered A's keys only once A's lease had run out, not before
        assert after[r.input_key].updated_at > expiry
        assert not after[r.input_key].owner.startswith("another-host.example:")
