"""Human label overrides in DuckDB: validating them, quarantining bad ones, the review candidates.

Overrides come from two places (see recsys_assets/labeling/overrides.py for why): the
`label_overrides` file in RECSYS_DATA_DIR and the table `recsys label override` writes. Both are
checked here by one SQL classification, each row getting the *first* failing reason, like the
ingest's rows:

- ``missing_id``: no restaurant_id;
- ``bad_id``: control/format characters or longer than the ingest's MAX_ID_CHARS;
- ``unknown_industry``: empty, or not a code of the taxonomy (case and spaces are forgiven);
- ``bad_timestamp``: a corrected_at that is not a date or timestamp;
- ``duplicate_id``: the same restaurant again further down the same source: the LAST valid row
  wins (a sheet is appended to, so the later line is the later correction); the earlier rows are
  quarantined with this reason, so nothing is lost and the conflict is visible;
- ``unknown_restaurant``: the restaurant is not in `restaurants` (a typo, or not ingested yet:
  the row applies by itself once it is).

A record with the wrong number of fields is set aside by the shared reader (``bad_field_count``).
Plain Python: knows nothing of Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from recsys_assets import taxonomy
from recsys_assets.warehouse import reader
from recsys_assets.warehouse.ingest import (
    _ID_FORBIDDEN,
    _TRIM_CHARS,
    MAX_ID_CHARS,
    REJECTED_ROWS_DDL,
)
from recsys_assets.warehouse.tables import scalar, transaction

TABLE = "label_overrides"
REVIEW_TABLE = "label_review_queue"
REQUIRED = ("restaurant_id", "industry", "note")
OPTIONAL = ("author", "corrected_at")
COLUMNS = ("restaurant_id", "industry", "note", "author", "corrected_at", "origin")
REASONS = (
    "missing_id",
    "bad_id",
    "unknown_industry",
    "bad_timestamp",
    "duplicate_id",
    "unknown_restaurant",
    reader.BAD_FIELD_COUNT,
)

_RAW = "__overrides_raw"
_IN = "__overrides_in"


@dataclass(frozen=True)
class Checked:
    """`valid`: the overrides that apply (COLUMNS; one row per restaurant, the command's row
    before the file's); `rejects`: source_file, row_number, reason, raw_row of the others."""

    valid: pd.DataFrame
    rejects: pd.DataFrame
    file_rows: int = 0
    command_rows: int = 0


def _qi(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@contextmanager
def _utc_session(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """corrected_at without an offset means UTC (as labeled_at does); restore the setting."""
    before = scalar(con, "SELECT current_setting('TimeZone')")
    con.execute("SET TimeZone = 'UTC'")
    try:
        yield
    finally:
        con.execute("SET TimeZone = ?", [before])


def _file_select(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, int]:
    """SELECT of the file's rows in the common shape, and the reader's rejects (kept in _RAW)."""
    raw = reader.load_raw(con, path, _RAW)
    mapping = reader.map_columns(con, path, raw, REQUIRED, OPTIONAL)

    def col(name: str) -> str:
        actual = mapping[name]
        if actual is None:
            return "CAST(NULL AS VARCHAR)"
        return f"NULLIF(trim(CAST(r.{_qi(actual)} AS VARCHAR), '{_TRIM_CHARS}'), '')"

    row_number, gaps = reader.row_number_sql(raw, "r")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_RAW}_rows AS SELECT {row_number} AS row_number, "
        f"to_json(r) AS raw_row, {', '.join(f'{col(c)} AS {c}' for c in REQUIRED + OPTIONAL)} "
        f"FROM {raw.table} r {gaps}"
    )
    return (
        f"SELECT 'file' AS origin, ? AS source_file, row_number, raw_row, restaurant_id, "
        f"industry, note, author, corrected_at FROM {_RAW}_rows"
    ), raw.n_rejected


def check(
    con: duckdb.DuckDBPyConnection,
    file: Path | None,
    command_rows: pd.DataFrame,
    command_source: str,
    restaurants: str | None,
) -> Checked:
    """Classify the file's rows and the command's rows (restaurant_id, industry, note, author,
    corrected_at as text) in one query; `restaurants` names a table or view with restaurant_id,
    or None to skip the unknown-restaurant check (no warehouse to check against)."""
    keep_order = scalar(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute("SET preserve_insertion_order = true")
    params: list[object] = [command_source]
    parts = [
        "SELECT 'command' AS origin, ? AS source_file, CAST(NULL AS BIGINT) AS row_number, "
        "to_json(c) AS raw_row, "
        + ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in REQUIRED + OPTIONAL)
        + " FROM __overrides_cmd c"
    ]
    n_file = 0
    con.register("__overrides_cmd", command_rows.astype(object).where(command_rows.notna(), None))
    try:
        if file is not None:
            select, _ = _file_select(con, file)
            parts.append(select)
            params.append(str(file))
            n_file = int(scalar(con, f"SELECT count(*) FROM {_RAW}_rows"))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_IN} AS {' UNION ALL '.join(parts)}", params)
        with _utc_session(con):
            classified = con.execute(
                _classify_sql(restaurants), [list(taxonomy.INDUSTRY_CODES)]
            ).df()
        rejects = _rejects(con, classified, file)
    finally:
        con.unregister("__overrides_cmd")
        reader.drop_raw(con, _RAW)
        con.execute(f"DROP TABLE IF EXISTS {_RAW}_rows")
        con.execute(f"DROP TABLE IF EXISTS {_IN}")
        con.execute(f"SET preserve_insertion_order = {'true' if keep_order else 'false'}")
    ok = classified[classified["reason"].isna()]
    cmd_ids = set(ok.loc[ok["origin"] == "command", "restaurant_id"])
    valid = ok[(ok["origin"] == "command") | ~ok["restaurant_id"].isin(cmd_ids)]
    valid = valid.sort_values("restaurant_id", kind="stable")[list(COLUMNS)].reset_index(drop=True)
    return Checked(valid, rejects, n_file, len(command_rows))


def _classify_sql(restaurants: str | None) -> str:
    """The first failing reason of every row; the last valid row of a restaurant per origin wins."""
    bad_id = f"regexp_matches(restaurant_id, '{_ID_FORBIDDEN}') OR length(restaurant_id) > {MAX_ID_CHARS}"
    unknown = (
        f"NOT EXISTS (SELECT 1 FROM {restaurants} k WHERE k.restaurant_id = s.restaurant_id)"
        if restaurants
        else "false"
    )
    return f"""
    WITH t AS (
        SELECT *, lower(industry) AS code,
               timezone('UTC', TRY_CAST(corrected_at AS TIMESTAMPTZ)) AS fixed_at,
               CASE
                 WHEN restaurant_id IS NULL THEN 'missing_id'
                 WHEN {bad_id} THEN 'bad_id'
                 WHEN industry IS NULL OR NOT list_contains($1, lower(industry)) THEN 'unknown_industry'
                 WHEN corrected_at IS NOT NULL AND TRY_CAST(corrected_at AS TIMESTAMPTZ) IS NULL
                   THEN 'bad_timestamp'
               END AS row_reason
        FROM {_IN}
    ),
    s AS (
        SELECT *, CASE WHEN row_reason IS NULL THEN row_number() OVER (
                    PARTITION BY origin, restaurant_id, row_reason IS NULL
                    ORDER BY row_number DESC NULLS LAST) END AS newest
        FROM t
    )
    SELECT origin, source_file, row_number, raw_row, restaurant_id, code AS industry, note, author,
           fixed_at AS corrected_at,
           CASE WHEN row_reason IS NOT NULL THEN row_reason
                WHEN newest > 1 THEN 'duplicate_id'
                WHEN {unknown} THEN 'unknown_restaurant' END AS reason
    FROM s ORDER BY origin, row_number
    """


def _rejects(
    con: duckdb.DuckDBPyConnection, classified: pd.DataFrame, file: Path | None
) -> pd.DataFrame:
    """The rows to quarantine (source_file, row_number, reason, raw_row), the reader's included."""
    bad = classified[classified["reason"].notna()]
    out = bad[["source_file", "row_number", "reason", "raw_row"]]
    if file is not None:
        extra = con.execute(
            f"SELECT ? AS source_file, row_number, reason, raw_row FROM {_RAW}_rejects", [str(file)]
        ).df()
        if len(extra):
            out = pd.concat([out, extra], ignore_index=True)
    return out.reset_index(drop=True)


def write(con: duckdb.DuckDBPyConnection, checked: Checked) -> None:
    """Replace the `label_overrides` table and its quarantined rows in `rejected_rows` together."""
    con.register("__ovr_valid", checked.valid)
    con.register("__ovr_rejects", checked.rejects)
    try:
        with transaction(con):
            con.execute(REJECTED_ROWS_DDL)
            con.execute(
                # Typed even when empty: a frame without rows would give columns of type NULL.
                f"CREATE OR REPLACE TABLE {TABLE} AS SELECT CAST(restaurant_id AS VARCHAR) AS "
                "restaurant_id, CAST(industry AS VARCHAR) AS industry, CAST(note AS VARCHAR) AS note, "
                "CAST(author AS VARCHAR) AS author, CAST(corrected_at AS TIMESTAMP) AS corrected_at, "
                "CAST(origin AS VARCHAR) AS origin FROM __ovr_valid ORDER BY restaurant_id"
            )
            con.execute("DELETE FROM rejected_rows WHERE table_name = ?", [TABLE])
            con.execute(
                "INSERT INTO rejected_rows SELECT ?, source_file, CAST(row_number AS BIGINT), reason, "
                "raw_row, current_localtimestamp() FROM __ovr_rejects",
                [TABLE],
            )
    finally:
        con.unregister("__ovr_valid")
        con.unregister("__ovr_rejects")


def review_candidates(con: duckdb.DuckDBPyConnection, exclude: list[str]) -> pd.DataFrame:
    """Every labeled restaurant with its text and current label, except overridden ones."""
    return con.execute(
        """
        SELECT r.restaurant_id, r.name, r.menu, r.description, ri.industry, ri.confidence,
               ri.source, ri.flagged
        FROM restaurant_industry ri JOIN restaurants r USING (restaurant_id)
        WHERE ri.source <> 'override' AND NOT list_contains(?, r.restaurant_id)
        ORDER BY r.restaurant_id
        """,
        [exclude],
    ).df()


def write_review_queue(con: duckdb.DuckDBPyConnection, queue: pd.DataFrame) -> None:
    con.register("__review", queue)
    try:
        with transaction(con):
            con.execute(
                f"CREATE OR REPLACE TABLE {REVIEW_TABLE} AS SELECT * FROM __review ORDER BY rank"
            )
    finally:
        con.unregister("__review")


def texts(con: duckdb.DuckDBPyConnection, ids: list[str]) -> pd.DataFrame:
    """name, menu, description of these restaurants (for the gold export)."""
    return con.execute(
        "SELECT restaurant_id, name, menu, description FROM restaurants "
        "WHERE list_contains(?, restaurant_id) ORDER BY restaurant_id",
        [ids],
    ).df()
