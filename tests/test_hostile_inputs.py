"""The hostile-input suite: every case in tests/hostile_inputs/ through the real ingest and a real
DuckDB file, checked against its line in cases.yaml (a new case is one folder and one entry)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from recsys_assets.warehouse.ingest import (
    IngestError,
    find_source,
    ingest_orders,
    ingest_products,
    ingest_restaurants,
)

CASES_DIR = Path(__file__).parent / "hostile_inputs"
CASES = yaml.safe_load((CASES_DIR / "cases.yaml").read_text(encoding="utf-8"))
INGEST = {"restaurants": ingest_restaurants, "products": ingest_products, "orders": ingest_orders}


def records_in(path: Path) -> int:
    """Data records in the file, counted without DuckDB (blank lines are not records)."""
    if path.name.endswith(".parquet"):
        return pq.read_metadata(path).num_rows
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    csv.field_size_limit(64 << 20)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return sum(1 for row in rows[1:] if row)


def test_every_case_folder_has_an_entry_and_vice_versa():
    folders = {p.name for p in CASES_DIR.iterdir() if p.is_dir() and p.name != "_base"}
    assert folders == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    table = case["table"]
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        if table == "orders":
            ingest_restaurants(con, CASES_DIR / "_base" / "restaurants.csv")
            ingest_products(con, CASES_DIR / "_base" / "products.csv")
        source = find_source(CASES_DIR / name, table)
        if "error" in case:
            with pytest.raises(IngestError) as err:
                INGEST[table](con, source)
            first_line = str(err.value).splitlines()[0]
            assert first_line.startswith(f"{source}: ") and case["error"] in first_line
            assert not con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]
            ).fetchone()[0]
            return
        result = INGEST[table](con, source)
        expected = {reason: sorted(rows) for reason, rows in (case.get("rejected") or {}).items()}
        n_rejected = sum(len(rows) for rows in expected.values())
        # Rows in = rows loaded + rows rejected, counted three ways.
        assert records_in(source) == case["rows"] == result.rows_read
        assert (result.rows_loaded, result.rows_rejected) == (case["loaded"], n_rejected)
        assert result.rows_loaded + result.rows_rejected == result.rows_read
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == case["loaded"]
        got: dict[str, list[int]] = {}
        for row_number, reason in con.execute(
            "SELECT row_number, reason FROM rejected_rows WHERE table_name = ? ORDER BY row_number",
            [table],
        ).fetchall():
            got.setdefault(reason, []).append(row_number)
        assert got == expected
        assert result.rejected_by_reason == {r: len(rows) for r, rows in expected.items()}
        for column, values in (case.get("values") or {}).items():
            loaded = con.execute(f"SELECT CAST({column} AS VARCHAR) FROM {table} ORDER BY rowid")
            assert [v if v is not None else "" for (v,) in loaded.fetchall()] == values, column
    finally:
        con.close()
