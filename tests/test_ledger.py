"""The labeling ledger: keys, fingerprints, final-answer semantics, stats/export/prune."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

import pandas as pd
import pytest

from recsys_assets.labeling.ledger import (
    Ledger,
    LedgerRecord,
    fingerprint,
    input_key,
    normalize_text,
)
from recsys_assets.labeling.llm import LLMOptions


@pytest.fixture()
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as led:
        yield led


def test_normalization_makes_cosmetic_edits_reuse_the_same_key():
    assert normalize_text("  치킨\u3000\t집 ") == "치킨 집"
    assert normalize_text("ＢＢＱ치킨") == "BBQ치킨"  # full-width -> NFKC
    assert normalize_text(None) == "" and normalize_text(float("nan")) == ""
    assert input_key("ＢＢＱ  치킨", " 후라이드,  양념 ", None) == input_key("BBQ 치킨", "후라이드, 양념", "")


def test_key_changes_with_any_field_and_keeps_field_boundaries():
    base = input_key("가게", "짜장면", None)
    assert input_key("가게", "짬뽕", None) != base
    assert input_key("가게", "짜장면", "배달 전문") != base
    assert input_key("ab", "c") != input_key("a", "bc")


def test_fingerprint_tracks_what_changes_answers_not_timeouts_or_key():
    a = LLMOptions(model="gpt-4o-mini", api_key="sk-test-aaaaaaaaaaaa", timeout_s=5)
    b = LLMOptions(model="gpt-4o-mini", api_key="sk-test-bbbbbbbbbbbb", timeout_s=60)
    assert fingerprint(a.fingerprint_params()) == fingerprint(b.fingerprint_params())
    for changed in (
        LLMOptions(model="gpt-4o"),
        LLMOptions(prompt_version="other"),
        LLMOptions(items_per_call=10),
        LLMOptions(temperature=0.7),
        LLMOptions(base_url="http://localhost:1234/v1"),
    ):
        assert fingerprint(changed.fingerprint_params()) != fingerprint(a.fingerprint_params())
    assert "sk-test" not in str(a.fingerprint_params())
    # credentials in a base URL never reach the ledger either
    assert "secret" not in str(LLMOptions(base_url="https://u:secret@h/v1?k=secret").fingerprint_params())


def test_final_answers_are_never_overwritten_and_failed_rows_are_upgraded(ledger):
    k1, k2 = input_key("a", "짜장면"), input_key("b", "피자")
    ledger.record("fp", [LedgerRecord(k1, "ok", "chinese", 0.9, tokens_in=100),
                         LedgerRecord(k2, "failed", error="http_500")], model="m", prompt_version="v")
    # a racing process (or a late failure) must not replace the final answer
    ledger.record("fp", [LedgerRecord(k1, "failed", error="timeout"),
                         LedgerRecord(k1, "ok", "korean", 0.5)], model="m", prompt_version="v")
    ledger.record("fp", [LedgerRecord(k2, "ok", "pizza", 0.8, tokens_in=50)], model="m", prompt_version="v")
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
    ledger.record("fpA", [LedgerRecord(input_key(str(i), "m"), "ok", "korean", 0.9, tokens_in=10,
                                       tokens_out=2, cost_usd=0.001) for i in range(5)],
                  model="gpt-4o-mini", prompt_version="v1")
    ledger.record("fpA", [LedgerRecord(input_key("x", "m"), "failed", error="http_500")],
                  model="gpt-4o-mini", prompt_version="v1")
    ledger.record("fpB", [LedgerRecord(input_key("y", "m"), "invalid", "other", 0.0, raw_response="{")],
                  model="gpt-4o", prompt_version="v2")
    st = ledger.stats()
    assert st["rows"] == 7 and st["by_status"] == {"ok": 5, "invalid": 1, "failed": 1}
    assert st["tokens_in"] == 50 and st["cost_usd"] == pytest.approx(0.005)
    assert {g["fingerprint"] for g in st["groups"]} == {"fpA", "fpB"}

    n = ledger.export(tmp_path / "e.parquet", fingerprint="fpA")
    assert n == 6 and len(pd.read_parquet(tmp_path / "e.parquet")) == 6
    assert ledger.export(tmp_path / "e.csv", status="invalid") == 1
    assert pd.read_csv(tmp_path / "e.csv")["raw_response"].tolist() == ["{"]
    with pytest.raises(ValueError):
        ledger.export(tmp_path / "e.json")

    with pytest.raises(ValueError):
        ledger.prune()  # an unfiltered prune is refused
    assert ledger.prune(status="failed") == 1 and ledger.count() == 7  # dry run by default
    assert ledger.prune(status="failed", dry_run=False) == 1 and ledger.count() == 6
    assert ledger.prune(older_than=timedelta(days=1), dry_run=False) == 0
    time.sleep(0.01)  # rows must be strictly older than the cutoff
    assert ledger.prune(older_than=timedelta(milliseconds=1), fingerprint="fpB", dry_run=False) == 1
    assert ledger.count() == 5


def test_per_row_commit_is_cheap(ledger):
    """Each finished call is its own transaction; that must stay well under a millisecond."""
    n = 300
    t0 = time.perf_counter()
    for i in range(n):
        ledger.record("fp", [LedgerRecord(input_key(str(i), "m"), "ok", "korean", 0.9)],
                      model="m", prompt_version="v")
    per_row_ms = (time.perf_counter() - t0) * 1000 / n
    assert ledger.count() == n
    assert per_row_ms < 5  # generous for slow CI disks; the benchmark reports the real figure
