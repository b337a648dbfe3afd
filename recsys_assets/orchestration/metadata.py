"""Helpers that turn warehouse tables into Dagster metadata (row counts, markdown previews)."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def markdown_table(df: pd.DataFrame, max_rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False, floatfmt=".4g"))


def preview(
    con: duckdb.DuckDBPyConnection, table: str, order_by: str, n: int = 10
) -> dg.MetadataValue:
    return markdown_table(
        con.execute(f"SELECT * FROM {table} ORDER BY {order_by} LIMIT {int(n)}").df()
    )


def distribution(counts: dict[str, int]) -> dg.MetadataValue:
    total = sum(counts.values()) or 1
    df = pd.DataFrame(
        [(k, v, v / total) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])],
        columns=["value", "rows", "share"],
    )
    return markdown_table(df, max_rows=len(df))
