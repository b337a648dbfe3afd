"""`recsys label` reads its input with the ingest's reader: no shifted columns, bad rows named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = ["r1,교촌치킨,후라이드|양념치킨", "r2,김밥천국,김밥|라면", "r3,스타벅스,아메리카노|라떼"]


def label(src: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys_assets.labeling.commands",
            "label",
            str(src),
            "-o",
            str(out),
            "--labeler",
            "offline",
            "--no-progress",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("header", ["restaurant_id,name,menu", "restaurant_id,name,menu,"])
def test_trailing_comma_rows_keep_their_ids(recsys_home, tmp_path, header):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("\n".join([header, *(r + "," for r in ROWS)]) + "\n", encoding="utf-8")
    res = label(src, out)
    assert res.returncode == 0, res.stderr
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["restaurant_id"].tolist() == ["r1", "r2", "r3"]
    assert got["name"].tolist() == ["교촌치킨", "김밥천국", "스타벅스"]
    assert got["menu"].tolist() == ["후라이드|양념치킨", "김밥|라면", "아메리카노|라떼"]
    assert got["industry"][0] == "chicken"  # labeled from its own menu, not a neighbour's column


def test_a_row_with_a_wrong_field_count_fails_with_its_line(recsys_home, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    lines = ["restaurant_id,name,menu", ROWS[0], ROWS[1] + ",extra", ROWS[2]]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = label(src, out)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert "in.csv: 1 record(s) do not have the header's 3 fields (first at line 3)" in last
    assert "김밥|라면,extra" in last
    assert not out.exists()


def test_cp949_that_is_valid_utf8_is_refused_with_the_encoding_hint(recsys_home, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes("restaurant_id,name,menu\nr1,짜짝짠,치킨\n".encode("cp949"))
    res = label(src, out)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert "in.csv: wrong encoding" in last and "iconv -f cp949 -t utf-8" in last
    assert not out.exists()
