"""`recsys label` when things go wrong (issue 9): a ledger that is not a ledger, a model that never
answers, hostile cell text, an output path that cannot be written.

Every case runs the real `recsys` CLI in a subprocess (the exit code is part of the contract) against
the fake OpenAI-compatible server over HTTP, through the real ChatOpenAI client.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recsys_assets.labeling.ledger import Ledger, LedgerError, LedgerRecord
from tests.fake_openai_server import FakeOpenAI
from tests.test_labeling_cli import fake_key, make_input

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        srv.keep_bodies = False
        yield srv


@pytest.fixture
def env(recsys_home, server):
    """The environment of a `recsys label` subprocess talking to the fake server."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPENAI_API_KEY": fake_key(),
        "OPENAI_BASE_URL": server.base_url,
        "RECSYS_LLM_MAX_CONCURRENCY": "1",  # calls in input order: the fault script is per row
        "RECSYS_LLM_BACKOFF_BASE": "0.005",
        "RECSYS_LLM_BACKOFF_MAX": "0.01",
        "RECSYS_LLM_TIMEOUT": "5",
    }


def recsys(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def ledger_rows(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT status, count(*) FROM labels GROUP BY status").fetchall())
    finally:
        con.close()


# -- row 7: an existing file that is not a ledger is refused, never silently replaced ----------------
def _foreign_sqlite(path: Path) -> None:
    path.unlink()  # replaced by another program's database
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (x TEXT)")
    con.execute("INSERT INTO notes VALUES ('keep me')")
    con.commit()
    con.close()


@pytest.fixture(scope="module")
def paid_ledger(tmp_path_factory) -> Path:
    """A ledger written by one real `recsys label` run (12 calls paid), copied by each case below."""
    root = tmp_path_factory.mktemp("paid-ledger")
    src, home = root / "in.csv", root / "home"
    make_input(src, 12)
    with FakeOpenAI() as srv:
        srv.keep_bodies = False
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "OPENAI_"))},
            "PYTHONPATH": str(REPO),
            "RECSYS_HOME": str(home),
            "OPENAI_API_KEY": fake_key(),
            "OPENAI_BASE_URL": srv.base_url,
            "RECSYS_LLM_MAX_CONCURRENCY": "1",
        }
        first = recsys(
            ["label", str(src), "-o", str(root / "out.csv"), "--labeler", "llm", "--no-progress"],
            env,
        )
        assert first.returncode == 0, first.stderr
        assert srv.requests == 12
    ledger = home / "labeling_ledger.sqlite"
    assert ledger_rows(ledger) == {"ok": 12}
    # The run closed it: everything is in the one file a case copies (no write-ahead log left).
    assert [p.name for p in home.glob("labeling_ledger.sqlite*")] == [ledger.name]
    return ledger


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: p.write_bytes(b""), "is empty (0 bytes), not a ledger"),
        (
            lambda p: p.write_bytes(os.urandom(3000)),
            "is not a labeling ledger (not an SQLite database)",
        ),
        (
            _foreign_sqlite,
            "is an SQLite database but not a labeling ledger (no `labels` table; its tables: notes)",
        ),
    ],
    ids=["truncated", "garbage", "foreign-sqlite"],
)
def test_a_ledger_that_is_not_a_ledger_stops_the_run_before_any_call(
    env, server, tmp_path, paid_ledger, damage, expected
):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    make_input(src, 12)
    ledger = Path(env["RECSYS_HOME"]) / "labeling_ledger.sqlite"
    shutil.copyfile(paid_ledger, ledger)  # 12 answers already paid for

    damage(ledger)
    before = ledger.read_bytes()
    res = recsys(["label", str(src), "-o", str(out), "--labeler", "llm", "--no-progress"], env)
    assert res.returncode == 2, res.stderr
    assert str(ledger) in last_line(res.stderr) and expected in last_line(res.stderr)
    assert "Traceback" not in res.stderr
    assert server.requests == 0  # not one call paid again
    assert ledger.read_bytes() == before  # the file is left exactly as it was
    assert not out.exists()

    stats = recsys(["ledger", "stats"], env)  # every entry point opens the ledger the same way
    assert stats.returncode == 2 and expected in stats.stderr


def test_a_new_ledger_is_created_only_where_no_file_exists(tmp_path):
    path = tmp_path / "sub" / "ledger.sqlite"
    with Ledger(path) as led:
        assert led.count() == 0
    assert path.stat().st_size > 0 and sorted(p.name for p in path.parent.iterdir()) == [
        "ledger.sqlite"
    ]
    path.write_bytes(b"")
    with pytest.raises(LedgerError, match="empty"):
        Ledger(path)
    assert path.stat().st_size == 0
    with pytest.raises(LedgerError, match="is a directory"):
        Ledger(tmp_path)


def test_workers_creating_one_new_ledger_at_once_all_open_it(tmp_path):
    """The file appears complete (built aside, linked into place): no worker sees it half-made."""
    path = tmp_path / "ledger.sqlite"
    code = (
        "import sys; from recsys_assets.labeling.ledger import Ledger, LedgerRecord\n"
        "with Ledger(sys.argv[1]) as led:\n"
        "    led.record('fp', [LedgerRecord(sys.argv[2], 'ok', 'korean', 0.9)], model='m', "
        "prompt_version='v')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path), f"k{i}"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with Ledger(path) as led:
        assert led.count(status="ok") == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite"]  # no temp file left


# -- row 14: an output that cannot be written is refused before any work -------------------------------
def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder that refuses new files even to root: root ignores mode bits, so as root use sysfs
    (file creation there is refused to everyone); otherwise a folder with mode 0555."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without sysfs: no folder here refuses root")
    return Path("/sys")


@pytest.mark.parametrize(
    ("make_output", "reason"),
    [
        (lambda tmp: (tmp / "labels.csv").mkdir() or tmp / "labels.csv", "it is a directory"),
        (
            lambda tmp: (
                (tmp / "notes.txt").write_text("x") and tmp / "notes.txt" / "sub" / "out.csv"
            ),
            "notes.txt is a file, not a folder",
        ),
        (lambda tmp: _unwritable_folder(tmp) / "out.parquet", "refuses new files"),
    ],
    ids=["directory", "under-a-file", "unwritable-folder"],
)
def test_an_unwritable_output_is_refused_before_any_call(
    env, server, tmp_path, make_output, reason
):
    src = tmp_path / "in.csv"
    make_input(src, 12)
    out = make_output(tmp_path)
    try:
        res = recsys(["label", str(src), "-o", str(out), "--labeler", "llm", "--no-progress"], env)
    finally:
        if out.parent.name == "read_only":
            out.parent.chmod(0o755)
    assert res.returncode == 2, res.stderr
    line = last_line(res.stderr)
    assert line.startswith(f"error: cannot write {out}: ") and reason in line, res.stderr
    assert "Traceback" not in res.stderr
    assert server.requests == 0  # nothing was labeled (or paid for)
    assert not (Path(env["RECSYS_HOME"]) / "labeling_ledger.sqlite").exists()


# -- row 9: CSV output is safe to open in a spreadsheet; Parquet keeps the raw text ------------------
HOSTILE = [
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)",
    '@HYPERLINK("http://evil.example","x")',
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]


def read_raw_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_label_csv_output_neutralizes_formulas_and_parquet_keeps_raw_text(env, tmp_path):
    n = len(HOSTILE) + 2
    df = pd.DataFrame(
        {
            "restaurant_id": [f"=R{i}" if i == 0 else f"R{i}" for i in range(n)],
            "name": [*HOSTILE, "교촌치킨", "-12.5"],
            "menu": ["후라이드치킨"] * n,
            '=HYPERLINK("http://evil.example")': ["-7"]
            * n,  # a hostile column name, a plain number
        }
    )
    src = tmp_path / "in.parquet"  # Parquet: the hostile text reaches `label` byte for byte
    df.to_parquet(src, index=False)
    for suffix in (".csv", ".parquet"):
        res = recsys(
            ["label", str(src), "-o", str(tmp_path / f"out{suffix}"), "--labeler", "offline"], env
        )
        assert res.returncode == 0, res.stderr

    header, *rows = read_raw_csv(tmp_path / "out.csv")
    assert header == [
        "restaurant_id",
        "name",
        "menu",
        '\'=HYPERLINK("http://evil.example")',
        "industry",
        "confidence",
        "source",
        "flagged",
        "label_status",
    ]
    assert [r[1] for r in rows] == ["'" + h for h in HOSTILE] + ["교촌치킨", "-12.5"]
    assert [r[0] for r in rows] == ["'=R0"] + [f"R{i}" for i in range(1, n)]
    assert {r[3] for r in rows} == {"-7"}  # a plain number is no formula: left as it is
    assert {r[4] for r in rows} == {"chicken"} and all(float(r[5]) > 0 for r in rows)
    trigger = ("=", "+", "-", "@", "\t", "\r")
    assert not [
        c for r in [header, *rows] for c in r if c.startswith(trigger) and c not in ("-12.5", "-7")
    ]

    raw = pd.read_parquet(tmp_path / "out.parquet")
    assert raw["name"].tolist() == df["name"].tolist()
    assert raw["restaurant_id"].tolist() == df["restaurant_id"].tolist()
    assert list(raw.columns)[:4] == list(df.columns)


def test_ledger_export_csv_neutralizes_model_text(env, tmp_path):
    ledger = Path(env["RECSYS_HOME"]) / "labeling_ledger.sqlite"
    with Ledger(ledger) as led:
        led.record(
            "fp",
            [
                LedgerRecord("k1", "ok", "korean", 0.9, reason='=HYPERLINK("http://x")'),
                LedgerRecord("k2", "failed", error="-1+1 timeout"),
            ],
            model="m",
            prompt_version="@v",
        )
    for suffix in (".csv", ".parquet"):
        res = recsys(["ledger", "export", str(tmp_path / f"ledger{suffix}")], env)
        assert res.returncode == 0, res.stderr
    header, *rows = read_raw_csv(tmp_path / "ledger.csv")
    got = [dict(zip(header, r, strict=True)) for r in rows]
    assert [g["reason"] for g in got] == ['\'=HYPERLINK("http://x")', ""]
    assert [g["error"] for g in got] == ["", "'-1+1 timeout"]
    assert {g["prompt_version"] for g in got} == {"'@v"}
    raw = pd.read_parquet(tmp_path / "ledger.parquet")
    assert raw["reason"].tolist()[0] == '=HYPERLINK("http://x")' and set(raw["prompt_version"]) == {
        "@v"
    }


# -- row 8: rows the model never answered make a distinct exit code; a rerun retries only them ------------
@pytest.fixture
def hang_env(env):
    """A short client timeout and two attempts per call, so a hung server costs about a second."""
    return {**env, "RECSYS_LLM_TIMEOUT": "0.5", "RECSYS_LLM_MAX_ATTEMPTS": "2"}


def label_csv(env: dict[str, str], src: Path, out: Path) -> subprocess.CompletedProcess:
    return recsys(["label", str(src), "-o", str(out), "--labeler", "llm", "--no-progress"], env)


def test_rows_without_an_answer_exit_3_and_only_they_are_retried(hang_env, server, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    make_input(src, 5)
    # row 0 hangs twice (no answer); row 2 is answered outside the taxonomy twice (answered: invalid)
    server.configure(script=["hang", "hang", "ok", "out_of_taxonomy", "out_of_taxonomy"])
    res = label_csv(hang_env, src, out)
    assert res.returncode == 3, res.stderr
    line = last_line(res.stderr)
    assert line.startswith(
        "error: 1 of 5 row(s) got no answer from the model (retries exhausted on timeout for 1)"
    ), res.stderr
    assert line.endswith("rerun the same command to retry only those 1 row(s).")
    assert server.requests == 7
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["label_status"].tolist() == ["unanswered", "ok", "invalid", "ok", "ok"]
    assert got["flagged"].tolist() == ["True", "False", "True", "False", "False"]
    assert got.loc[[0, 2], "industry"].tolist() == ["other", "other"]
    ledger = Path(hang_env["RECSYS_HOME"]) / "labeling_ledger.sqlite"
    assert ledger_rows(ledger) == {"failed": 1, "invalid": 1, "ok": 3}  # no answer is not an answer

    res = label_csv(hang_env, src, out)  # the server is healthy again
    assert res.returncode == 0, res.stderr
    assert server.requests == 8  # one call: the unanswered row only
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["label_status"].tolist() == ["ok", "ok", "invalid", "ok", "ok"]
    assert got["flagged"].tolist() == ["False", "False", "True", "False", "False"]
    assert ledger_rows(ledger) == {"invalid": 1, "ok": 4}


def test_a_circuit_breaker_stop_writes_every_row_and_exits_3(hang_env, server, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    make_input(src, 6)
    server.configure(script=["ok", "ok"], rates={"hang": 1.0})  # two answers, then nothing
    res = label_csv({**hang_env, "RECSYS_LLM_BREAKER": "3"}, src, out)
    assert res.returncode == 3, res.stderr
    assert "stopped after 3 consecutive failed calls (last: timeout" in res.stderr
    line = last_line(res.stderr)
    assert line.startswith(
        "error: 4 of 6 row(s) got no answer from the model (retries exhausted on "
        "timeout for 1; the circuit breaker stopped the run)"
    ), res.stderr
    assert server.requests == 5  # 2 answers, 2 attempts for row 2, 1 for row 3, then the stop
    got = pd.read_parquet(out)
    assert got["restaurant_id"].tolist() == [f"R{i:03d}" for i in range(6)]
    assert got["label_status"].tolist() == ["ok", "ok"] + ["unanswered"] * 4
    assert got["flagged"].tolist() == [False, False] + [True] * 4
    assert set(got["industry"][2:]) == {"other"} and set(got["source"]) == {"llm"}
    ledger = Path(hang_env["RECSYS_HOME"]) / "labeling_ledger.sqlite"
    assert ledger_rows(ledger) == {"failed": 1, "ok": 2}

    server.configure(rates={})
    res = label_csv(hang_env, src, out)
    assert res.returncode == 0, res.stderr
    assert server.requests == 9  # the four unanswered rows, nothing else
    assert set(pd.read_parquet(out)["label_status"]) == {"ok"}
