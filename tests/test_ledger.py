"""The labeling ledger: keys, fingerprints, final-answer semantics, claims, stats/export/prune.

Tests that take the `open_ledger` / `ledger` fixtures are backend-independent: they run here on
SQLite and again in test_ledger_postgres.py, which overrides `store_url` with a PostgreSQL URL.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets.labeling import ledger as ledger_mod
from recsys_assets.labeling.ledger import (
    Ledger,
    LedgerError,
    LedgerRecord,
    fingerprint,
    input_key,
    ledger_url,
    normalize_text,
    safe_url,
)
from recsys_assets.labeling.llm import LLMOptions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store_url(tmp_path) -> str:
    """Where the ledger lives; test_ledger_postgres.py overrides this with a fresh PG database."""
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def open_ledger(store_url):
    """Open more ledgers on the same store: each one is a separate worker (its own claim owner)."""
    opened: list[Ledger] = []

    def _open(**kwargs) -> Ledger:
        led = Ledger.from_url(store_url, **kwargs)
        opened.append(led)
        return led

    yield _open
    for led in opened:
        led.close()


@pytest.fixture
def ledger(open_ledger):
    return open_ledger()


def test_normalization_makes_cosmetic_edits_reuse_the_same_key():
    assert normalize_text("  치킨\u3000\t집 ") == "치킨 집"
    assert normalize_text("ＢＢＱ치킨") == "BBQ치킨"  # full-width -> NFKC
    assert normalize_text(None) == "" and normalize_text(float("nan")) == ""
    assert input_key("ＢＢＱ  치킨", " 후라이드,  양념 ", None) == input_key(
        "BBQ 치킨", "후라이드, 양념", ""
    )


def test_key_changes_with_any_field_and_keeps_field_boundaries():
    base = input_key("가게", "짜장면", None)
    assert input_key("가게", "짬뽕", None) != base
    assert input_key("가게", "짜장면", "배달 전문") != base
    assert input_key("ab", "c") != input_key("a", "bc")


def test_fingerprint_tracks_what_changes_answers_not_timeouts_key_or_version_label():
    a = LLMOptions(model="gpt-4o-mini", api_key="sk-test-aaaaaaaaaaaa", timeout_s=5)
    b = LLMOptions(
        model="gpt-4o-mini",
        api_key="sk-test-bbbbbbbbbbbb",
        timeout_s=60,
        prices=(1.0, 2.0),
        prompt_version="a label, not content",
    )
    assert fingerprint(a.fingerprint_params()) == fingerprint(b.fingerprint_params())
    for changed in (
        LLMOptions(model="gpt-4o"),
        LLMOptions(items_per_call=10),
        LLMOptions(temperature=0.7),
        LLMOptions(base_url="http://localhost:1234/v1"),
    ):
        assert fingerprint(changed.fingerprint_params()) != fingerprint(a.fingerprint_params())
    assert "sk-test" not in str(a.fingerprint_params())
    # credentials in a base URL never reach the ledger either
    assert "secret" not in str(
        LLMOptions(base_url="https://u:secret@h/v1?k=secret").fingerprint_params()
    )


def test_final_answers_are_never_overwritten_and_failed_rows_are_upgraded(ledger):
    k1, k2 = input_key("a", "짜장면"), input_key("b", "피자")
    ledger.record(
        "fp",
        [
            LedgerRecord(k1, "ok", "chinese", 0.9, tokens_in=100),
            LedgerRecord(k2, "failed", error="http_500"),
        ],
        model="m",
        prompt_version="v",
    )
    # a racing process (or a late failure) must not replace the final answer
    ledger.record(
        "fp",
        [LedgerRecord(k1, "failed", error="timeout"), LedgerRecord(k1, "ok", "korean", 0.5)],
        model="m",
        prompt_version="v",
    )
    ledger.record(
        "fp", [LedgerRecord(k2, "ok", "pizza", 0.8, tokens_in=50)], model="m", prompt_version="v"
    )
    got = ledger.lookup("fp", [k1, k2, "missing"])
    assert (got[k1].status, got[k1].industry) == ("ok", "chinese")
    assert (got[k2].status, got[k2].industry) == ("ok", "pizza")
    assert set(got) == {k1, k2}
    rows = {r["input_key"]: r for r in ledger.iter_rows()}
    assert rows[k2]["attempts"] == 2  # the failed attempt is kept in the count
    assert ledger.count() == 2


def test_other_fingerprints_stay_queryable(ledger):
    k = input_key("a", "짜장면")
    ledger.record("old", [LedgerRecord(k, "ok", "chinese", 0.9)], model="m", prompt_version="v1")
    assert ledger.lookup("new", [k]) == {}
    ledger.record("new", [LedgerRecord(k, "ok", "chinese", 0.95)], model="m", prompt_version="v2")
    assert ledger.count(fingerprint="old") == 1 and ledger.count(fingerprint="new") == 1


def test_wal_mode_and_plain_sql_readable(tmp_path):
    path = tmp_path / "l.sqlite"
    with Ledger(path) as led:
        led.record("fp", [LedgerRecord("k", "ok", "pizza", 0.9)], model="m", prompt_version="v")
        # another connection (another process) sees the committed row at once
        con = sqlite3.connect(path)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT industry FROM labels").fetchall() == [("pizza",)]
        con.close()
    assert path.read_bytes()[:15] == b"SQLite format 3"


def test_stats_export_and_prune(ledger, tmp_path):
    ledger.register_fingerprint("fpA", {"model": "gpt-4o-mini", "prompt_version": "v1"})
    ledger.record(
        "fpA",
        [
            LedgerRecord(
                input_key(str(i), "m"),
                "ok",
                "korean",
                0.9,
                tokens_in=10,
                tokens_out=2,
                cost_usd=0.001,
            )
            for i in range(5)
        ],
        model="gpt-4o-mini",
        prompt_version="v1",
    )
    ledger.record(
        "fpA",
        [LedgerRecord(input_key("x", "m"), "failed", error="http_500")],
        model="gpt-4o-mini",
        prompt_version="v1",
    )
    ledger.record(
        "fpB",
        [LedgerRecord(input_key("y", "m"), "invalid", "other", 0.0, raw_response="{")],
        model="gpt-4o",
        prompt_version="v2",
    )
    st = ledger.stats()
    assert st["rows"] == 7 and st["by_status"] == {"ok": 5, "invalid": 1, "failed": 1}
    assert st["tokens_in"] == 50 and st["cost_usd"] == pytest.approx(0.005)
    assert {g["fingerprint"] for g in st["groups"]} == {"fpA", "fpB"}

    n = ledger.export(tmp_path / "e.parquet", fingerprint="fpA")
    assert n == 6 and len(pd.read_parquet(tmp_path / "e.parquet")) == 6
    assert ledger.export(tmp_path / "e.csv", status="invalid") == 1
    assert pd.read_csv(tmp_path / "e.csv")["raw_response"].tolist() == ["{"]
    with pytest.raises(ValueError, match=r"must end in \.csv or \.parquet"):
        ledger.export(tmp_path / "e.json")

    with pytest.raises(ValueError, match="prune needs at least one of"):
        ledger.prune()  # an unfiltered prune is refused
    assert ledger.prune(status="failed") == 1 and ledger.count() == 7  # dry run by default
    assert ledger.prune(status="failed", dry_run=False) == 1 and ledger.count() == 6
    assert ledger.prune(older_than=timedelta(days=1), dry_run=False) == 0
    time.sleep(0.01)  # rows must be strictly older than the cutoff
    assert ledger.prune(older_than=timedelta(milliseconds=1), fingerprint="fpB", dry_run=False) == 1
    assert ledger.count() == 5


def test_stats_name_the_current_fingerprint_and_count_what_it_would_pay_again(ledger):
    k = [input_key(str(i), "m") for i in range(6)]
    ledger.register_fingerprint("old1", {"model": "m", "prompt_version": "v1"})
    ledger.record(
        "old1",
        [
            LedgerRecord(k[0], "ok", "korean", 0.9, latency_ms=100.0),
            LedgerRecord(k[1], "ok", "korean", 0.9, latency_ms=300.0),
            LedgerRecord(k[2], "invalid", "other", 0.0),
            LedgerRecord(k[3], "failed", error="timeout"),
        ],
        model="m",
        prompt_version="v1",
    )
    # k1 answered under two old fingerprints counts once; k4 answered under the current one
    # (and an old one) is no re-pay; a failed row was never paid an answer.
    ledger.record(
        "old2",
        [LedgerRecord(k[1], "ok", "korean", 0.8), LedgerRecord(k[4], "ok", "pizza", 0.9)],
        model="m",
        prompt_version="v2",
    )
    ledger.record(
        "cur",
        [
            LedgerRecord(k[4], "ok", "pizza", 0.9, latency_ms=50.0),
            LedgerRecord(k[5], "failed", error="timeout"),
        ],
        model="m",
        prompt_version="v2",
    )
    assert ledger.repay_count("cur") == 3  # k0, k1, k2
    assert ledger.repay_count("old1") == 1  # k4
    assert ledger.repay_count("nowhere") == 4  # every answered input
    st = ledger.stats(current="cur")
    assert st["current"] == {"fingerprint": "cur", "answered": 1, "repay_inputs": 3}
    assert {g["fingerprint"] for g in st["groups"] if g["current"]} == {"cur"}
    assert {g["prompt_version"] for g in st["groups"] if g["fingerprint"] == "old1"} == {"v1"}
    assert ledger.stats()["current"] is None
    assert ledger.fingerprint_params() == {"old1": {"model": "m", "prompt_version": "v1"}}
    assert sorted(ledger.recent_latencies_ms(["old1", "cur"])) == [50.0, 100.0, 300.0]
    assert len(ledger.recent_latencies_ms(["old1"], limit=1)) == 1
    assert ledger.recent_latencies_ms([]) == []


def test_per_row_commit_is_cheap(ledger):
    """Each finished call is its own transaction; that must stay well under a millisecond."""
    n = 300
    t0 = time.perf_counter()
    for i in range(n):
        ledger.record(
            "fp",
            [LedgerRecord(input_key(str(i), "m"), "ok", "korean", 0.9)],
            model="m",
            prompt_version="v",
        )
    per_row_ms = (time.perf_counter() - t0) * 1000 / n
    assert ledger.count() == n
    assert per_row_ms < 5  # generous for slow CI disks; the benchmark reports the real figure


# -- claims: no key paid for by two workers ---------------------------------------------------
def _ok(key: str, industry: str = "korean") -> LedgerRecord:
    return LedgerRecord(key, "ok", industry, 0.9)


def test_a_live_claim_keeps_peers_off_until_answered_failed_or_released(open_ledger):
    a, b = open_ledger(), open_ledger()
    k1, k2, k3, k4 = (input_key(str(i), "m") for i in range(4))
    assert a.claim("fp", [k1, k2, k3]) == {k1, k2, k3}
    assert b.claim("fp", [k1, k2, k3, k4]) == {k4}  # a's live claims are not b's to take
    assert a.claim("fp", [k1, k2, k3]) == {k1, k2, k3}  # re-claiming one's own keys is harmless
    assert a.claim("other-fp", [k1]) == {k1}  # claims are per fingerprint, like answers

    a.record("fp", [_ok(k1)], model="m", prompt_version="v")
    assert b.claim("fp", [k1]) == set() and a.claim("fp", [k1]) == set()  # answered: nobody pays
    a.record("fp", [LedgerRecord(k2, "failed", error="http_500")], model="m", prompt_version="v")
    assert b.claim("fp", [k2]) == {k2}  # a failure hands the key back
    a.release("fp", [k3])
    assert b.claim("fp", [k3]) == {k3}
    states = {k: c.state for k, c in a.claims("fp", [k1, k2, k3, k4]).items()}
    assert states == {k1: "done", k2: "claimed", k3: "claimed", k4: "claimed"}
    assert {c.owner for c in a.claims("fp", [k2, k3, k4]).values()} == {b.owner}
    # a late failure of the old holder cannot release the new holder's claim
    a.record("fp", [LedgerRecord(k3, "failed", error="timeout")], model="m", prompt_version="v")
    assert a.claim("fp", [k3]) == set()


def test_answers_recorded_without_a_claim_still_block_claims(ledger):
    """Rows of a pre-claims ledger (or a direct record) count as answered."""
    k = input_key("a", "m")
    ledger.record("fp", [_ok(k)], model="m", prompt_version="v")
    assert ledger.claim("fp", [k]) == set()


def test_an_expired_lease_is_taken_over(open_ledger, monkeypatch):
    a, b = open_ledger(), open_ledger()
    a.owner = "another-host.example:4242:cafe"  # a worker elsewhere: only its lease can end
    k, k_live = input_key("a", "m"), input_key("b", "m")
    assert a.claim("fp", [k_live]) == {k_live}
    with monkeypatch.context() as m:  # a's clock: the lease it took on k has already run out
        m.setattr(ledger_mod, "_iso_in", lambda seconds: "2000-01-01T00:00:00.000+00:00")
        assert a.claim("fp", [k]) == {k}
    assert b.claim("fp", [k, k_live]) == {k}
    assert b.claims("fp", [k])[k].owner == b.owner
    # the slow worker's answer still lands (first final answer wins) and b's claim turns done
    a.record("fp", [_ok(k, "pizza")], model="m", prompt_version="v")
    assert b.lookup("fp", [k])[k].industry == "pizza"
    assert b.claim("fp", [k]) == set()


def test_a_dead_local_claimant_is_taken_over_at_once_a_live_one_is_not(open_ledger):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    host = ledger_mod._HOST
    crashed, alive, b = open_ledger(), open_ledger(), open_ledger()
    crashed.owner = f"{host}:{dead_pid}:dead"
    alive.owner = f"{host}:{os.getppid()}:alive"
    k1, k2 = input_key("a", "m"), input_key("b", "m")
    assert crashed.claim("fp", [k1]) == {k1} and alive.claim("fp", [k2]) == {k2}
    assert b.claim("fp", [k1, k2]) == {k1}


def test_claims_of_a_lost_ledger_of_this_process_are_taken_over(open_ledger, store_url):
    """A long-lived process (a Dagster worker) that dropped a ledger without closing it."""
    import gc

    k = input_key("a", "m")
    lost = Ledger.from_url(store_url)
    assert lost.claim("fp", [k]) == {k}
    b = open_ledger()
    assert b.claim("fp", [k]) == set()  # its owner is still open: a live peer
    lost._conn.close()  # what garbage collection would do to the connection
    del lost
    gc.collect()
    assert b.claim("fp", [k]) == {k}


def test_close_hands_back_unfinished_claims(open_ledger):
    a, b = open_ledger(), open_ledger()
    k1, k2 = input_key("a", "m"), input_key("b", "m")
    assert a.claim("fp", [k1, k2]) == {k1, k2}
    a.record("fp", [_ok(k1)], model="m", prompt_version="v")
    a.close()
    assert b.claim("fp", [k1, k2]) == {k2}


def test_renew_extends_only_ones_own_lease(open_ledger):
    a, b = open_ledger(lease_seconds=60), open_ledger(lease_seconds=3600)
    k1, k2 = input_key("a", "m"), input_key("b", "m")
    a.claim("fp", [k1])
    b.claim("fp", [k2])
    before = a.claims("fp", [k1, k2])
    b.renew("fp", [k1, k2])
    after = a.claims("fp", [k1, k2])
    assert after[k1] == before[k1]  # b cannot extend a's claim
    assert after[k2].lease_until >= before[k2].lease_until and after[k2].owner == b.owner


def test_pruned_answers_can_be_claimed_again(ledger):
    k = input_key("a", "m")
    assert ledger.claim("fp", [k]) == {k}
    ledger.record("fp", [_ok(k)], model="m", prompt_version="v")
    assert ledger.claim("fp", [k]) == set()
    assert ledger.prune(fingerprint="fp", dry_run=False) == 1
    assert ledger.claim("fp", [k]) == {k}


def test_stats_count_live_claims(ledger):
    ledger.claim("fp", [input_key("a", "m"), input_key("b", "m")])
    st = ledger.stats()
    assert st["in_progress"] == 2 and st["rows"] == 0
    assert "***" not in st["url"] or st["url"] == safe_url(st["url"])


# -- URLs, settings, secrets ---------------------------------------------------------------------
def test_ledger_url_defaults_to_the_sqlite_file_and_the_env_overrides(recsys_home, monkeypatch):
    from recsys_assets.config import load_settings

    monkeypatch.delenv("RECSYS_LEDGER_URL", raising=False)
    settings = load_settings()
    url = ledger_url(settings)
    assert url == f"sqlite:///{settings.ledger_path}"
    with Ledger.from_url(url) as led:  # the same file `Ledger(path)` opens
        led.record("fp", [_ok("k")], model="m", prompt_version="v")
    with Ledger(settings.ledger_path) as led:
        assert led.count() == 1 and led.path == settings.ledger_path
    monkeypatch.setenv("RECSYS_LEDGER_URL", "postgresql://u:pw@db.example/ledger")
    assert ledger_url(load_settings()) == "postgresql://u:pw@db.example/ledger"
    assert "pw" not in repr(load_settings())  # the URL may carry a password


def test_passwords_are_masked_in_every_message(tmp_path):
    assert safe_url("postgresql+psycopg://u:s3cret@h:5/db") == "postgresql+psycopg://u:***@h:5/db"
    assert "s3cret" not in safe_url("postgresql://u:s3cret@h:notaport/db")  # unparsable
    assert "s3cret" not in safe_url("postgresql://u@h/db?password=s3cret&sslmode=disable")
    with pytest.raises(LedgerError) as info:
        Ledger.from_url("mysql://u:s3cret@h/db")
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match="exactly one of a SQLite path or a url"):
        Ledger(tmp_path / "a.sqlite", url="sqlite://")


def test_lease_setting_from_env(tmp_path, monkeypatch):
    from recsys_assets.config import ConfigError, load_settings

    monkeypatch.setenv("RECSYS_LEDGER_LEASE_SECONDS", "42")
    lease = load_settings().ledger.lease_seconds
    with Ledger(tmp_path / "a.sqlite", lease_seconds=lease) as led:
        assert led.lease_seconds == 42
    for bad in ("soon", "0"):
        monkeypatch.setenv("RECSYS_LEDGER_LEASE_SECONDS", bad)
        with pytest.raises(ConfigError, match="RECSYS_LEDGER_LEASE_SECONDS"):
            load_settings()


# -- two worker processes on one ledger ----------------------------------------------------------
WORKER_MENUS = [
    "짜장면, 짬뽕",
    "삼겹살, 항정살",
    "연어초밥, 우동",
    "페퍼로니 피자",
    "떡볶이, 튀김",
    "아메리카노, 빙수",
]


def worker_inputs(tmp_path: Path, shared: int = 40, own: int = 20) -> list[Path]:
    """Two input files that share `shared` restaurants (same order: the hardest race) and have
    `own` each."""

    def rows(prefix: str, start: int, n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "restaurant_id": [f"{prefix}{i:03d}" for i in range(start, start + n)],
                "name": [f"가게{prefix}{i}" for i in range(start, start + n)],
                "menu": [WORKER_MENUS[i % len(WORKER_MENUS)] for i in range(start, start + n)],
            }
        )

    common = rows("S", 0, shared)
    paths = []
    for w in ("A", "B"):
        df = pd.concat([common, rows(w, 0, own)], ignore_index=True)
        df["restaurant_id"] = [f"{w}-{i}" for i in range(len(df))]
        path = tmp_path / f"in_{w}.csv"
        df.to_csv(path, index=False)
        paths.append(path)
    return paths


def run_two_workers(tmp_path: Path, server, env: dict[str, str]) -> list[str]:
    """Start two `recsys label` processes at once; returns their stderr (their summaries).

    The fake holds every call until a 2nd one arrives: a worker sends its first call alone (it
    settles the structured-output method), so the 2nd is the other worker's first call, and both
    are sure to be working on the shared block at once.
    """
    both_started = threading.Event()
    orig = server._next_fault

    def gated() -> str:
        if server.requests >= 2:
            both_started.set()
        both_started.wait(60)
        return orig()

    server._next_fault = gated
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recsys_assets.labeling.commands",
                "label",
                str(src),
                "-o",
                str(tmp_path / f"out_{src.stem}.csv"),
                "--labeler",
                "llm",
                "--no-progress",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in worker_inputs(tmp_path)
    ]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        errs.append(err)
    return errs


def claims_rows(url: str) -> list:
    """The claims table as any SQL client sees it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as con:
            return con.execute(
                text(
                    "SELECT input_key, fingerprint, state, owner, lease_until, "
                    "updated_at FROM claims ORDER BY input_key"
                )
            ).fetchall()
    finally:
        engine.dispose()


def assert_shared_block_was_split(url: str, tmp_path: Path) -> None:
    """Both workers answered part of the shared inputs: they really raced for the same keys."""
    src = pd.read_csv(tmp_path / "in_A.csv")
    shared = {
        input_key(n, m)
        for n, m in zip(src["name"], src["menu"], strict=True)
        if n.startswith("가게S")
    }
    rows = [r for r in claims_rows(url) if r.input_key in shared]
    assert len(rows) == len(shared) == 40 and {r.state for r in rows} == {"done"}
    assert len({r.owner for r in rows}) == 2, Counter(r.owner for r in rows)


def assert_no_key_paid_twice(tmp_path: Path, server, errs: list[str], distinct: int) -> None:
    names = Counter(
        json.loads(body["messages"][1]["content"].split("\n")[1])[0]["name"]
        for body in server.bodies
    )
    assert server.requests == distinct == len(names)
    assert max(names.values()) == 1, names.most_common(3)
    paid = 0
    for src, err in zip(("in_A", "in_B"), errs, strict=True):
        out = pd.read_csv(tmp_path / f"out_{src}.csv")
        assert len(out) == 60 and not out["flagged"].any() and out["industry"].notna().all()
        found = re.search(r"labeled now (\d+), from ledger (\d+)", err)
        now, from_ledger = int(found[1]), int(found[2])
        assert now + from_ledger == 60  # 60 distinct inputs per file
        paid += now
    assert paid == distinct  # each input labeled by exactly one of the two workers


@pytest.fixture
def worker_env(recsys_home):
    from tests.fake_openai_server import FakeOpenAI

    with FakeOpenAI(latency_ms=20) as server:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OPENAI_API_KEY": "sk-test-" + "w" * 32,
            "OPENAI_BASE_URL": server.base_url,
            "RECSYS_LLM_MAX_CONCURRENCY": "4",
            "RECSYS_LLM_TIMEOUT": "10",
        }
        env.pop("RECSYS_LEDGER_URL", None)
        yield server, env


def test_two_processes_on_one_sqlite_ledger_never_pay_twice(worker_env, tmp_path, recsys_home):
    server, env = worker_env
    errs = run_two_workers(tmp_path, server, env)
    assert_no_key_paid_twice(tmp_path, server, errs, distinct=80)
    with Ledger(recsys_home / "labeling_ledger.sqlite") as led:
        assert led.count(status="ok") == 80 and led.integrity_check() == "ok"
        assert led.stats()["in_progress"] == 0
    assert_shared_block_was_split(f"sqlite:///{recsys_home / 'labeling_ledger.sqlite'}", tmp_path)


def test_the_engine_waits_for_keys_a_peer_holds_and_reuses_its_answers(
    recsys_home, store_url, monkeypatch
):
    """In one process: a live peer holds 3 keys (one inside each of the first three call
    batches) and answers them while this run is busy; the run pays only for the rest, takes the
    peer's two answers as reused and its failure as this run's failure (retried next run, not
    paid twice now)."""
    from recsys_assets.config import load_settings
    from recsys_assets.labeling.engine import EngineConfig
    from recsys_assets.labeling.service import label_frame
    from tests.fake_openai_server import FakeOpenAI

    df = pd.DataFrame(
        {
            "restaurant_id": [f"R{i}" for i in range(20)],
            "name": [f"가게{i}" for i in range(20)],
            "menu": [WORKER_MENUS[i % len(WORKER_MENUS)] for i in range(20)],
        }
    )
    keys = [input_key(n, m) for n, m in zip(df["name"], df["menu"], strict=True)]
    monkeypatch.setenv("RECSYS_LEDGER_URL", store_url)
    settings = load_settings()
    with FakeOpenAI(latency_ms=5) as server:
        opts = LLMOptions(base_url=server.base_url, api_key="sk-test-" + "p" * 32, items_per_call=5)
        fp = fingerprint(opts.fingerprint_params())
        peer = Ledger.from_url(store_url)
        held = [keys[1], keys[7], keys[12]]
        assert peer.claim(fp, held) == set(held)
        orig = server._next_fault

        def peer_answers_during_the_run() -> str:
            if server.requests == 3:  # every batch has been claimed (a claim precedes its call)
                peer.record(
                    fp,
                    [
                        _ok(keys[1]),
                        _ok(keys[7]),
                        LedgerRecord(keys[12], "failed", error="http_500"),
                    ],
                    model="m",
                    prompt_version="v",
                )
            return orig()

        server._next_fault = peer_answers_during_the_run
        try:
            out, rep = label_frame(
                df,
                labeler="llm",
                settings=settings,
                llm_options=opts,
                engine_config=EngineConfig(max_concurrency=2, items_per_call=5),
            )
        finally:
            peer.close()
        sent = [json.loads(b["messages"][1]["content"].split("\n")[1]) for b in server.bodies]
    sent_names = [item["name"] for body in sent for item in body]
    assert sorted(sent_names) == sorted(set(df["name"]) - {"가게1", "가게7", "가게12"})
    assert rep.remaining == 0 and len(out) == 20
    assert rep.reused_from_ledger == 2 and rep.failed == 1 and rep.labeled_this_run == 18
    assert out.set_index("restaurant_id").loc["R12", "flagged"]
    assert not out.drop(index=12)["flagged"].any()


def test_open_ledger_takes_the_settings_lease(recsys_home, monkeypatch):
    from recsys_assets.config import load_settings
    from recsys_assets.labeling.ledger import open_ledger

    monkeypatch.setenv("RECSYS_LEDGER_LEASE_SECONDS", "77")
    with open_ledger(load_settings()) as led:
        assert led.lease_seconds == 77
