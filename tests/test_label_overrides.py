"""Human corrections (label overrides) and the review queue, through the CLI and the assets."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from recsys_assets.cli import _register_optional, app
from recsys_assets.config import load_settings
from recsys_assets.labeling import overrides as ov
from recsys_assets.orchestration.ingest import restaurants
from recsys_assets.orchestration.labeling import restaurant_industry
from recsys_assets.orchestration.overrides import label_overrides, label_review_queue
from recsys_assets.orchestration.resources import default_resources
from recsys_assets.sample_data import generate_sample
from recsys_assets.warehouse import overrides as sql
from tests.fake_openai_server import FakeOpenAI
from tests.in_process import recsys_here

_register_optional()

REPO = Path(__file__).resolve().parents[1]
GOLD = REPO / "recsys_assets" / "data" / "real_world_restaurants.csv"
if not GOLD.exists():  # the gold set moves to recsys_assets/data in a parallel branch
    GOLD = REPO / "tests" / "data" / "real_world_restaurants.csv"
LABEL_ASSETS = [restaurants, label_overrides, restaurant_industry, label_review_queue]


def recsys(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (exit codes, one-line errors); env: the test's RECSYS_*."""
    return subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", *args],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def data(recsys_home, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    generate_sample(folder, n_restaurants=30, seed=5, fmt="csv")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(folder))
    monkeypatch.setenv("RECSYS_LABELER", "offline")
    return folder


def materialize(assets=LABEL_ASSETS, settings=None) -> dg.ExecuteInProcessResult:
    settings = settings or load_settings()
    result = dg.materialize(assets, resources=default_resources(settings))
    assert result.success
    return result


def query(sql_text: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(load_settings().warehouse_path), read_only=True) as con:
        return con.execute(sql_text, params).fetchall()


def label_of(rid: str) -> tuple:
    [row] = query(
        "SELECT industry, source, confidence, flagged FROM restaurant_industry "
        "WHERE restaurant_id = ?",
        [rid],
    )
    return row


def restaurant_ids(data: Path) -> list[str]:
    return pd.read_csv(data / "restaurants.csv")["restaurant_id"].tolist()


def write_overrides(
    data: Path,
    rows: list[list[str]],
    header=("restaurant_id", "industry", "note", "author", "corrected_at"),
) -> Path:
    path = data / "label_overrides.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# -- overrides win and survive rebuilds --------------------------------------------------------
def test_command_override_wins_and_survives_rebuilds(data):
    materialize()
    rid = restaurant_ids(data)[0]
    before = label_of(rid)[0]
    target = "pub" if before != "pub" else "bakery"

    done = recsys_here(["label", "override", rid, target, "--note", "a bar, not a restaurant"])
    assert done.returncode == 0, done.stderr
    assert f"{rid} -> {target}" in done.stdout and f"was {before}" in done.stdout

    materialize()  # rebuild through Dagster: the override is the label
    assert label_of(rid) == (target, "override", 1.0, False)
    rebuilt = recsys("materialize", "--select", "restaurants,label_overrides,restaurant_industry")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert label_of(rid) == (target, "override", 1.0, False)
    # every other restaurant is still labeled by the labeler
    assert query("SELECT count(*) FROM restaurant_industry WHERE source = 'override'") == [(1,)]

    removed = recsys_here(["label", "override", "--remove", rid])
    assert removed.returncode == 0, removed.stderr
    materialize()
    assert label_of(rid)[:2] == (before, "offline")
    with sqlite3.connect(load_settings().home / ov.STORE_NAME) as con:  # the removal is logged
        assert con.execute(
            "SELECT action FROM override_log WHERE restaurant_id = ? ORDER BY id", [rid]
        ).fetchall() == [("set",), ("remove",)]


def test_file_override_applies_and_command_beats_file(data):
    a, b = restaurant_ids(data)[:2]
    write_overrides(
        data, [[a, "Seafood ", "fish market", "ops", "2026-03-01 09:00"], [b, "pub", "bar", "", ""]]
    )
    assert recsys("label", "override", b, "chinese", "--note", "checked by phone").returncode == 0
    result = materialize()
    assert label_of(a) == ("seafood", "override", 1.0, False)
    assert label_of(b)[:2] == ("chinese", "override")
    assert query("SELECT labeled_at FROM restaurant_industry WHERE restaurant_id = ?", [a]) == [
        (pd.Timestamp("2026-03-01 09:00").to_pydatetime(),)
    ]
    [mat] = result.asset_materializations_for_node("label_overrides")
    assert mat.metadata["from_file"].value == 1 and mat.metadata["from_command"].value == 1

    listed = recsys("label", "override", "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().splitlines()[-1] == "2 override(s) in effect, 0 row(s) quarantined"
    assert any(line.startswith(b) and "command" in line for line in listed.stdout.splitlines())


def test_overrides_win_over_llm_and_ledger_and_are_never_sent(data, tmp_path, monkeypatch):
    """An override made before the LLM run keeps its restaurant from ever being sent; one made
    after (its answer is in the ledger) still wins, in the asset and in `recsys label`."""
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-overrides")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("RECSYS_LABELER", "llm")
        materialize([restaurants])
        frame = pd.read_csv(data / "restaurants.csv")
        unique = frame[~frame["menu"].duplicated(keep=False)]
        never, later = unique["restaurant_id"].iloc[0], unique["restaurant_id"].iloc[1]
        never_menu = unique["menu"].iloc[0]
        assert (
            recsys_here(["label", "override", never, "other", "--note", "closed"]).returncode == 0
        )

        materialize()
        assert server.bodies and not any(never_menu in str(b) for b in server.bodies)
        assert label_of(never) == ("other", "override", 1.0, False)
        assert label_of(later)[1] == "llm"

        assert (
            recsys_here(["label", "override", later, "bakery", "--note", "bread only"]).returncode
            == 0
        )
        materialize()
        assert label_of(later) == ("bakery", "override", 1.0, False)

        out = tmp_path / "labeled.csv"
        run = recsys_here(["label", str(data / "restaurants.csv"), "-o", str(out), "--no-progress"])
        assert run.returncode == 0, run.stderr
        assert "plus 2 row(s) set by label overrides" in run.stderr
        labeled = pd.read_csv(out)
        assert labeled["restaurant_id"].tolist() == frame["restaurant_id"].tolist()
        got = labeled.set_index("restaurant_id")
        assert tuple(got.loc[later, ["industry", "source", "confidence", "flagged"]]) == (
            "bakery",
            "override",
            1.0,
            False,
        )
        assert got.loc[never, "industry"] == "other" and got.loc[never, "source"] == "override"
        assert set(labeled["source"]) == {"llm", "override"}
        assert not any(never_menu in str(b) for b in server.bodies)


# -- refusals: one line, exit 2, nothing written -----------------------------------------------
def test_override_refusals_exit_2_and_write_nothing(data):
    materialize()
    rid = restaurant_ids(data)[0]
    store = load_settings().home / ov.STORE_NAME
    cases = {
        (
            "label",
            "override",
            rid,
            "pizzaa",
            "--note",
            "x",
        ): "error: unknown industry 'pizzaa' (did you mean pizza?)",
        (
            "label",
            "override",
            "R-NOPE",
            "pizza",
            "--note",
            "x",
        ): "error: unknown restaurant 'R-NOPE'",
        ("label", "override", rid, "pizza"): "error: --note is required",
        (
            "label",
            "override",
            rid,
            "pizza",
            "--note",
            "x",
            "--list",
        ): "error: give RESTAURANT_ID INDUSTRY",
        ("label", "override", "--remove", rid): f"error: no override of '{rid}'",
    }
    for args, first in cases.items():
        done = recsys(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(first), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (
        not store.exists()
        or not sqlite3.connect(store).execute("SELECT count(*) FROM overrides").fetchone()[0]
    )
    forced = recsys("label", "override", "R-NOPE", "pizza", "--note", "opens next week", "--force")
    assert forced.returncode == 0, forced.stderr


def test_override_works_while_a_run_holds_the_warehouse(data):
    materialize()
    rid = restaurant_ids(data)[0]
    with duckdb.connect(str(load_settings().warehouse_path)):  # a writer holds the lock
        done = recsys("label", "override", rid, "pizza", "--note", "pizzeria")
        review = recsys("label", "review", "-o", str(data.parent / "q.csv"))
    assert done.returncode == 0, done.stderr
    assert "is not checked against the restaurants" in done.stderr
    assert review.returncode == 75 and "being written by another process" in review.stderr
    materialize()
    assert label_of(rid)[:2] == ("pizza", "override")


# -- quarantine: one test per reason ------------------------------------------------------------
REASON_ROWS = {
    "missing_id": ["", "pizza", "n", "", ""],
    "bad_id": ["R\u200b1", "pizza", "n", "", ""],
    "unknown_industry": ["{rid}", "pizzeria", "n", "", ""],
    "bad_timestamp": ["{rid}", "pizza", "n", "", "last tuesday"],
    "unknown_restaurant": ["R-NOT-THERE", "pizza", "n", "", ""],
}


@pytest.mark.parametrize("reason", [*REASON_ROWS, "duplicate_id", "bad_field_count"])
def test_each_quarantine_reason(data, reason):
    materialize([restaurants])
    good, other = restaurant_ids(data)[:2]
    path = data / "label_overrides.csv"
    if reason == "duplicate_id":  # the last row wins, the earlier one is quarantined
        write_overrides(
            data,
            [
                [other, "pub", "first", "", ""],
                [good, "bakery", "g", "", ""],
                [other, "chinese", "second", "", ""],
            ],
        )
    elif reason == "bad_field_count":
        write_overrides(data, [[good, "bakery", "g", "", ""]])
        with path.open("a", newline="", encoding="utf-8") as f:
            f.write(f"{other},pub,n,,,extra\r\n")
    else:
        bad = [c.format(rid=other) for c in REASON_ROWS[reason]]
        write_overrides(data, [[good, "bakery", "g", "", ""], bad])
    materialize([restaurants, label_overrides])
    rejects = query(
        "SELECT reason, row_number, source_file FROM rejected_rows "
        "WHERE table_name = 'label_overrides'"
    )
    expected_line = 1 if reason == "duplicate_id" else 2
    assert rejects == [(reason, expected_line, str(path))]
    applied = dict(query("SELECT restaurant_id, industry FROM label_overrides"))
    assert applied[good] == "bakery"
    assert applied.get(other) == ("chinese" if reason == "duplicate_id" else None)
    # Output only (the exit codes are the subprocess tests' business): in-process, no cold start.
    listed = CliRunner().invoke(app, ["label", "override", "--list"])
    assert listed.exit_code == 0, listed.output
    assert f"quarantined ({reason})" in listed.stdout


def test_unusable_overrides_file_fails_with_the_cause(data):
    write_overrides(data, [["R1", "pizza"]], header=("restaurant_id", "industry"))
    result = dg.materialize(
        [restaurants, label_overrides],
        resources=default_resources(load_settings()),
        raise_on_error=False,
    )
    assert not result.success
    listed = recsys("label", "override", "--list")
    assert listed.returncode == 2
    assert "missing required column(s) note" in listed.stderr.splitlines()[-1]


# -- the review queue ---------------------------------------------------------------------------
def _seed_labels(data: Path) -> dict[str, str]:
    """A warehouse whose labels make each review reason happen once (plus a clean row)."""
    materialize([restaurants])
    ids = restaurant_ids(data)
    frame = pd.read_csv(data / "restaurants.csv").set_index("restaurant_id")
    roles = {
        "flagged": ids[0],
        "disagree": ids[1],
        "low": ids[2],
        "clean": ids[3],
        "overridden": ids[4],
        "formula": ids[5],
    }
    from recsys_assets.labeling.offline import OfflineLabeler

    off = OfflineLabeler().predict(
        frame.loc[roles["disagree"], "name"], frame.loc[roles["disagree"], "menu"]
    )
    assert off.evidence  # the lexicon has a reason to disagree
    wrong = "bakery" if off.industry != "bakery" else "pub"
    rows = [
        (roles["flagged"], "other", 0.0, "llm", True),
        (roles["disagree"], wrong, 0.9, "llm", False),
        (roles["low"], "korean", 0.2, "offline", False),
        (roles["clean"], "korean", 0.95, "offline", False),
        (roles["overridden"], "korean", 0.1, "offline", False),  # would be low confidence
        (roles["formula"], "korean", 0.3, "offline", False),
    ]
    with duckdb.connect(str(load_settings().warehouse_path)) as con:
        con.execute(
            "UPDATE restaurants SET name = '=HYPERLINK(\"x\")' WHERE restaurant_id = ?",
            [roles["formula"]],
        )
        con.execute(
            "CREATE OR REPLACE TABLE restaurant_industry (restaurant_id VARCHAR, industry "
            "VARCHAR, confidence DOUBLE, source VARCHAR, labeled_at TIMESTAMP, flagged BOOLEAN)"
        )
        con.executemany("INSERT INTO restaurant_industry VALUES (?, ?, ?, ?, now(), ?)", rows)
    return roles


def test_review_queue_ranks_flagged_first_and_excludes_overrides(data, tmp_path):
    roles = _seed_labels(data)
    assert (
        recsys("label", "override", roles["overridden"], "chinese", "--note", "x").returncode == 0
    )
    out = tmp_path / "queue.csv"
    done = recsys("label", "review", "-o", str(out))
    assert done.returncode == 0, done.stderr
    queue = pd.read_csv(out)
    assert list(queue.columns) == list(ov.REVIEW_COLUMNS)
    assert queue["restaurant_id"].tolist() == [
        roles["flagged"],
        roles["disagree"],
        roles["low"],
        roles["formula"],
    ]
    assert queue["rank"].tolist() == [1, 2, 3, 4]
    assert queue.loc[0, "reason"].startswith("flagged")
    assert queue.loc[1, "reason"].startswith("offline says ")
    assert queue.loc[2, "reason"] == "low confidence 0.20 < 0.5"
    assert queue.loc[3, "name"].startswith("'=")  # spreadsheet-safe
    limited = recsys("label", "review", "-o", str(out), "--limit", "1")
    assert limited.returncode == 0 and pd.read_csv(out)["restaurant_id"].tolist() == [
        roles["flagged"]
    ]

    # the asset writes the same ranking (the override is applied by the materialized table)
    materialize([label_overrides, label_review_queue])
    assert [r[0] for r in query("SELECT restaurant_id FROM label_review_queue ORDER BY rank")] == [
        roles["flagged"],
        roles["disagree"],
        roles["low"],
        roles["formula"],
    ]


def test_review_without_labels_exits_2(data, tmp_path):
    done = recsys("label", "review", "-o", str(tmp_path / "q.csv"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: no labels in ")


# -- corrections feed the gold set ------------------------------------------------------------
def test_export_gold_in_the_gold_file_format(data, tmp_path):
    materialize()
    ids = restaurant_ids(data)
    assert recsys("label", "override", ids[0], "pizza", "--note", "pizzeria").returncode == 0
    write_overrides(data, [[ids[1], "pub", "bar", "", ""]])
    out = tmp_path / "gold.csv"
    done = recsys("label", "override", "--export-gold", str(out))
    assert done.returncode == 0, done.stderr
    with GOLD.open(encoding="utf-8") as f:
        gold_header = next(csv.reader(f))
    exported = pd.read_csv(out, keep_default_na=False)
    assert list(exported.columns[: len(gold_header)]) == gold_header
    frame = pd.read_csv(data / "restaurants.csv", keep_default_na=False).set_index("restaurant_id")
    by_id = exported.set_index("restaurant_id")
    assert by_id.loc[ids[0], "industry"] == "pizza" and by_id.loc[ids[1], "industry"] == "pub"
    assert by_id.loc[ids[0], "name"] == frame.loc[ids[0], "name"]
    assert by_id.loc[ids[0], "menu"] == frame.loc[ids[0], "menu"]
    assert set(exported["split"]) == {ov.GOLD_SPLIT}


def test_check_without_warehouse_skips_the_restaurant_check(recsys_home, tmp_path):
    """`recsys label` applies overrides by the input's ids, with no warehouse to check against."""
    path = tmp_path / "label_overrides.csv"
    path.write_text("restaurant_id,industry,note\nX1,PUB,bar\n", encoding="utf-8")
    with duckdb.connect() as con:
        checked = sql.check(con, path, ov.OverrideStore(recsys_home).frame(), "store", None)
    assert checked.valid[["restaurant_id", "industry", "origin"]].values.tolist() == [
        ["X1", "pub", "file"]
    ]
    assert checked.rejects.empty


def test_recsys_label_override_replaces_an_input_industry_column(data, tmp_path):
    """An input that already has label columns (a gold file, an earlier output) still shows the
    override on the overridden row, and the labeler's answer on the others."""
    frame = pd.read_csv(data / "restaurants.csv").head(4)[["restaurant_id", "name", "menu"]]
    frame["industry"] = "stale"
    frame.to_csv(tmp_path / "in.csv", index=False)
    rid = frame["restaurant_id"].iloc[2]
    forced = recsys("label", "override", rid, "seafood", "--note", "fish", "--force")
    assert forced.returncode == 0, forced.stderr
    out = tmp_path / "out.csv"
    run = recsys("label", str(tmp_path / "in.csv"), "-o", str(out), "--no-progress")
    assert run.returncode == 0, run.stderr
    got = pd.read_csv(out)
    assert got["restaurant_id"].tolist() == frame["restaurant_id"].tolist()
    assert got["source"].tolist() == ["offline", "offline", "override", "offline"]
    assert got.loc[2, "industry"] == "seafood" and "stale" not in set(got["industry"])
