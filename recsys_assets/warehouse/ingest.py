"""Load the three input files (restaurants, products, orders) into DuckDB, quarantining bad rows.

Why this shape:
- Input files come from other systems and are dirty; one bad row must not sink a 10M-line load,
  so each row is classified in SQL with the *first* failing reason and bad rows go to
  `rejected_rows` (with the original row as JSON) instead of raising.
- A file that is unusable as a whole (missing columns, wrong encoding, empty, unreadable) raises
  `IngestError` with the file and the problem: silently loading nothing would look like success.
- Everything runs inside DuckDB (no per-row Python) so 10M lines stay fast and memory-bounded.
- Each ingest replaces its table and its previous rejects in one transaction: re-running is
  idempotent and a failure half-way leaves the previous table untouched.

Plain Python: knows nothing of Dagster.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

__all__ = [
    "IngestError",
    "IngestResult",
    "REJECTED_ROWS_DDL",
    "SOURCE_NAMES",
    "find_source",
    "ingest_orders",
    "ingest_products",
    "ingest_restaurants",
]

SOURCE_NAMES = ("restaurants", "products", "orders")
_SUFFIXES = (".csv", ".csv.gz", ".parquet")

# Years outside this range are typos (0202, 20244) rather than real signups/orders.
MIN_PLAUSIBLE_YEAR = 1970
MAX_PLAUSIBLE_YEAR = 2100

# Characters stripped from both ends of every value: ASCII whitespace plus NBSP, the ideographic
# (full-width) space common in Korean text, and stray BOMs. A fixed constant, never user input.
_TRIM_CHARS = " \t\r\n\u00a0\u3000\ufeff"

REJECTED_ROWS_DDL = """
CREATE TABLE IF NOT EXISTS rejected_rows (
    table_name VARCHAR,
    source_file VARCHAR,
    row_number BIGINT,
    reason VARCHAR,
    raw_row VARCHAR,
    rejected_at TIMESTAMP
)
"""

_TARGET_DDL = {
    "restaurants": """
        CREATE OR REPLACE TABLE restaurants (
            restaurant_id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            menu VARCHAR NOT NULL,
            description VARCHAR,
            region VARCHAR,
            size VARCHAR,
            signup_date DATE NOT NULL
        )""",
    "products": """
        CREATE OR REPLACE TABLE products (
            product_id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            category VARCHAR NOT NULL,
            unit_price DOUBLE NOT NULL
        )""",
    "orders": """
        CREATE OR REPLACE TABLE orders (
            order_id VARCHAR NOT NULL,
            restaurant_id VARCHAR NOT NULL,
            product_id VARCHAR NOT NULL,
            quantity DOUBLE NOT NULL,
            ordered_at TIMESTAMP NOT NULL
        )""",
}

_REQUIRED = {
    "restaurants": ("restaurant_id", "name", "menu", "signup_date"),
    "products": ("product_id", "name", "category", "unit_price"),
    "orders": ("order_id", "restaurant_id", "product_id", "quantity", "ordered_at"),
}
_OPTIONAL = {
    "restaurants": ("description", "region", "size"),
    "products": (),
    "orders": (),
}

_RESTAURANT_SIZES = ("small", "medium", "large")


class IngestError(Exception):
    """A file is unusable as a whole; the message names the file and the problem."""


@dataclass(frozen=True)
class IngestResult:
    table: str
    source_file: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def find_source(data_dir: Path, name: str) -> Path:
    """Return the single input file for `name` (csv, csv.gz or parquet) in `data_dir`.

    Exactly one must exist: two candidates would make it ambiguous which one is the truth.
    """
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown source {name!r}; expected one of {SOURCE_NAMES}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise IngestError(f"data folder {data_dir} does not exist or is not a folder")
    found = [data_dir / f"{name}{suffix}" for suffix in _SUFFIXES]
    found = [p for p in found if p.is_file()]
    expected = ", ".join(f"{name}{s}" for s in _SUFFIXES)
    if not found:
        raise IngestError(f"no {name} file in {data_dir}: expected one of {expected}")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise IngestError(f"several {name} files in {data_dir} ({names}): keep exactly one")
    return found[0]


# ------------------------------------------------------------------------------------ helpers


def _qi(identifier: str) -> str:
    """Quote an SQL identifier (column names come from file headers, so they are untrusted)."""
    return '"' + identifier.replace('"', '""') + '"'


def _norm_col(name: str) -> str:
    return name.strip().strip("\ufeff").strip().lower()


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(".parquet")


def _encoding_hint(path: Path) -> str:
    """Guess what the file is if not UTF-8, so the error tells the operator what to convert from."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            sample = fh.read(1 << 16)
    except OSError:
        return ""
    # Cut at the last newline so a multi-byte character split by the sample boundary does not
    # count as invalid.
    if b"\n" in sample:
        sample = sample[: sample.rfind(b"\n")]
    try:
        sample.decode("utf-8")
        return ""  # the bad bytes are further in; no basis for a guess
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp949")
    except UnicodeDecodeError:
        return ""
    return " (looks like CP949/EUC-KR; convert it, e.g. iconv -f cp949 -t utf-8)"


def _load_raw(con: duckdb.DuckDBPyConnection, path: Path, raw_table: str) -> None:
    """Copy the file into a temp table as-is; rowid order is file order (insertion order kept)."""
    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: empty file (no header)")
    if _is_parquet(path):
        source = "read_parquet(?)"
    else:
        # Pin the dialect: with `|`-separated menus the sniffer could pick `|` as the delimiter.
        source = (
            "read_csv(?, all_varchar=true, header=true, delim=',', quote='\"', escape='\"', "
            "encoding='utf-8', auto_detect=true)"
        )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {raw_table} AS SELECT * FROM {source}", [str(path)]
        )
    except duckdb.Error as exc:
        msg = str(exc)
        if _is_parquet(path):
            raise IngestError(f"{path}: unreadable Parquet file: {_first_lines(msg, 2)}") from exc
        if "invalid unicode" in msg.lower():
            raise IngestError(
                f"{path}: wrong encoding, the file is not valid UTF-8{_encoding_hint(path)}: "
                f"{_first_lines(msg, 3)}"
            ) from exc
        raise IngestError(
            f"{path}: malformed CSV (comma-separated, double-quoted, UTF-8 expected; look for rows "
            f"with a wrong number of fields or an unclosed quote): {_first_lines(msg, 3)}"
        ) from exc


def _first_lines(msg: str, n: int) -> str:
    """DuckDB errors are long; keep the informative head (kind, line number, offending line)."""
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.lower().startswith("possible")]
    return " | ".join(lines[:n])


def _map_columns(
    con: duckdb.DuckDBPyConnection, path: Path, raw_table: str, table: str
) -> dict[str, str | None]:
    """Map each wanted (normalized) column to the file's column name; None if optional + absent."""
    actual = [row[0] for row in con.execute(f"DESCRIBE {raw_table}").fetchall()]
    by_norm: dict[str, list[str]] = {}
    for col in actual:
        by_norm.setdefault(_norm_col(col), []).append(col)
    if not _is_parquet(path) and actual == ["column0"] and "column0" not in _REQUIRED[table]:
        # DuckDB's placeholder when the file has no header line at all (e.g. gz of an empty file).
        count = con.execute(f"SELECT count(*) FROM {raw_table}").fetchone()[0]
        if count == 0:
            raise IngestError(f"{path}: empty file (no header)")
    missing = [c for c in _REQUIRED[table] if c not in by_norm]
    if missing:
        raise IngestError(
            f"{path}: missing required column(s) {', '.join(missing)} for {table} "
            f"(found: {', '.join(actual)})"
        )
    mapping: dict[str, str | None] = {}
    for col in _REQUIRED[table] + _OPTIONAL[table]:
        hits = by_norm.get(col)
        if hits and len(hits) > 1:
            raise IngestError(f"{path}: column {col!r} appears more than once ({', '.join(hits)})")
        mapping[col] = hits[0] if hits else None
    return mapping


def _clean(mapping: dict[str, str | None], col: str) -> str:
    """SQL for the trimmed value of `col` with '' as NULL; NULL if the optional column is absent."""
    actual = mapping[col]
    if actual is None:
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF(trim(CAST(r.{_qi(actual)} AS VARCHAR), '{_TRIM_CHARS}'), '')"


def _plausible(expr: str) -> str:
    return f"(year({expr}) BETWEEN {MIN_PLAUSIBLE_YEAR} AND {MAX_PLAUSIBLE_YEAR})"


def _checked_sql(
    table: str, mapping: dict[str, str | None], raw_table: str, max_chars: int | None
) -> str:
    """One SELECT producing row number, cleaned/typed columns and the first failing reason.

    The raw-row JSON is built later, only for rejected rows (not for 10M good ones).
    """
    cols = ",\n            ".join(f"{_clean(mapping, c)} AS {c}" for c in mapping)
    base = f"""
        SELECT r.rowid + 1 AS __row_number,
            {cols}
        FROM {raw_table} r
    """
    n = int(max_chars or 0)  # only restaurants/products check text length
    if table == "restaurants":
        return f"""
        WITH t AS ({base}),
        typed AS (
            SELECT *,
                row_number() OVER (PARTITION BY restaurant_id ORDER BY __row_number) AS __dup_rank,
                CAST(TRY_CAST(signup_date AS TIMESTAMP) AS DATE) AS __ts_date,
                TRY_CAST(signup_date AS DATE) AS __date
            FROM t
        ),
        typed2 AS (SELECT *, coalesce(__date, __ts_date) AS __signup FROM typed)
        SELECT __row_number,
            restaurant_id, name, coalesce(menu, '') AS menu, description, region,
            lower(size) AS size, __signup AS signup_date,
            CASE
                WHEN restaurant_id IS NULL THEN 'missing_id'
                WHEN __dup_rank > 1 THEN 'duplicate_id'
                WHEN name IS NULL THEN 'missing_name'
                WHEN __signup IS NULL OR NOT {_plausible('__signup')} THEN 'bad_date'
                WHEN size IS NOT NULL AND lower(size) NOT IN {_RESTAURANT_SIZES} THEN 'bad_size'
                WHEN length(name) > {n} OR length(coalesce(menu, '')) > {n}
                     OR length(coalesce(description, '')) > {n} THEN 'oversized_text'
            END AS __reason
        FROM typed2
        """
    if table == "products":
        return f"""
        WITH t AS ({base}),
        typed AS (
            SELECT *,
                row_number() OVER (PARTITION BY product_id ORDER BY __row_number) AS __dup_rank,
                TRY_CAST(unit_price AS DOUBLE) AS __price
            FROM t
        )
        SELECT __row_number,
            product_id, name, category, __price AS unit_price,
            CASE
                WHEN product_id IS NULL THEN 'missing_id'
                WHEN __dup_rank > 1 THEN 'duplicate_id'
                WHEN name IS NULL THEN 'missing_name'
                WHEN category IS NULL THEN 'missing_category'
                WHEN __price IS NULL OR NOT isfinite(__price) THEN 'bad_number'
                WHEN __price < 0 THEN 'negative_price'
                WHEN length(name) > {n} OR length(category) > {n} THEN 'oversized_text'
            END AS __reason
        FROM typed
        """
    if table == "orders":
        return f"""
        WITH t AS ({base}),
        typed AS (
            SELECT *,
                row_number() OVER (PARTITION BY order_id, product_id ORDER BY __row_number)
                    AS __dup_rank,
                TRY_CAST(quantity AS DOUBLE) AS __qty,
                TRY_CAST(ordered_at AS TIMESTAMP) AS __ts
            FROM t
        )
        SELECT __row_number,
            typed.order_id, typed.restaurant_id, typed.product_id,
            __qty AS quantity, __ts AS ordered_at,
            CASE
                WHEN typed.order_id IS NULL OR typed.restaurant_id IS NULL
                     OR typed.product_id IS NULL THEN 'missing_id'
                WHEN __dup_rank > 1 THEN 'duplicate_id'
                WHEN __qty IS NULL OR NOT isfinite(__qty) THEN 'bad_number'
                WHEN __qty <= 0 THEN 'non_positive_quantity'
                WHEN __ts IS NULL OR NOT {_plausible('__ts')} THEN 'bad_timestamp'
                WHEN kr.restaurant_id IS NULL THEN 'unknown_restaurant'
                WHEN kp.product_id IS NULL THEN 'unknown_product'
            END AS __reason
        FROM typed
        LEFT JOIN (SELECT DISTINCT restaurant_id FROM restaurants) kr
            ON kr.restaurant_id = typed.restaurant_id
        LEFT JOIN (SELECT DISTINCT product_id FROM products) kp
            ON kp.product_id = typed.product_id
        """
    raise ValueError(table)


_TARGET_COLS = {
    "restaurants": (
        "restaurant_id", "name", "menu", "description", "region", "size", "signup_date",
    ),
    "products": ("product_id", "name", "category", "unit_price"),
    "orders": ("order_id", "restaurant_id", "product_id", "quantity", "ordered_at"),
}


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary "
        "AND schema_name = current_schema()",
        [name],
    ).fetchone()
    return bool(row and row[0])


def _replace_target(con: duckdb.DuckDBPyConnection, table: str, checked: str) -> None:
    """Swap in the new table contents (called inside the transaction)."""
    cols = ", ".join(_TARGET_COLS[table])
    con.execute(_TARGET_DDL[table])
    con.execute(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {checked} "
        f"WHERE __reason IS NULL ORDER BY __row_number"
    )


def _ingest(
    con: duckdb.DuckDBPyConnection, path: Path, table: str, max_text_chars: int | None
) -> IngestResult:
    path = Path(path)
    if max_text_chars is not None and max_text_chars < 1:
        raise ValueError("max_text_chars must be >= 1")
    if table == "orders":
        for dep in ("restaurants", "products"):
            if not _table_exists(con, dep):
                raise IngestError(
                    f"{path}: cannot check orders, table {dep!r} is missing (ingest it first)"
                )
    raw = f"__ingest_raw_{table}"
    checked = f"__ingest_checked_{table}"
    source_file = str(path)

    # Row numbers are the raw temp table's rowids, which follow insertion (= file) order only when
    # the table is committed before use (rowids inside an open transaction are transaction-local)
    # and insertion order is preserved; so load it in autocommit mode first, and restore the
    # connection's setting afterwards.
    keep_order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = true")
    try:
        _load_raw(con, path, raw)
        mapping = _map_columns(con, path, raw, table)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(REJECTED_ROWS_DDL)
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {checked} AS "
                + _checked_sql(table, mapping, raw, max_text_chars)
            )
            con.execute("DELETE FROM rejected_rows WHERE table_name = ?", [table])
            con.execute(
                "INSERT INTO rejected_rows "
                "SELECT ?, ?, c.__row_number, c.__reason, to_json(r), current_localtimestamp() "
                f"FROM {checked} c JOIN {raw} r ON r.rowid + 1 = c.__row_number "
                "WHERE c.__reason IS NOT NULL ORDER BY c.__row_number",
                [table, source_file],
            )
            _replace_target(con, table, checked)
            counts = con.execute(
                f"SELECT __reason, count(*) FROM {checked} GROUP BY __reason"
            ).fetchall()
            con.execute(f"DROP TABLE {checked}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {raw}")
        con.execute(f"SET preserve_insertion_order = {'true' if keep_order else 'false'}")

    by_reason = {reason: int(c) for reason, c in counts if reason is not None}
    loaded = sum(int(c) for reason, c in counts if reason is None)
    rejected = sum(by_reason.values())
    return IngestResult(
        table=table,
        source_file=source_file,
        rows_read=loaded + rejected,
        rows_loaded=loaded,
        rows_rejected=rejected,
        rejected_by_reason=dict(sorted(by_reason.items())),
    )


def ingest_restaurants(
    con: duckdb.DuckDBPyConnection, path: Path, *, max_text_chars: int = 2000
) -> IngestResult:
    """Replace `restaurants` from `path`; bad rows go to `rejected_rows`."""
    return _ingest(con, path, "restaurants", max_text_chars)


def ingest_products(
    con: duckdb.DuckDBPyConnection, path: Path, *, max_text_chars: int = 500
) -> IngestResult:
    """Replace `products` from `path`; bad rows go to `rejected_rows`."""
    return _ingest(con, path, "products", max_text_chars)


def ingest_orders(con: duckdb.DuckDBPyConnection, path: Path) -> IngestResult:
    """Replace `orders` from `path`; lines whose restaurant/product is not loaded are rejected."""
    return _ingest(con, path, "orders", None)
