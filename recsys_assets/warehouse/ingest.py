"""Load the three input files (restaurants, products, orders) into DuckDB, quarantining bad rows.

Why this shape:
- Input files come from other systems and are dirty; one bad row must not sink a 10M-line load,
  so each row is classified in SQL with the *first* failing reason and bad rows go to
  `rejected_rows` (with the original row as JSON) instead of raising.
- Files are read by `reader` (shared with `recsys label`): a record with a wrong number of fields
  is quarantined like any bad row; a file that is unusable as a whole (missing columns, wrong
  encoding, empty, an unclosed quote) raises `IngestError` naming the file and the problem on its
  first line: silently loading nothing would look like success.
- Everything runs inside DuckDB (no per-row Python) so 10M lines stay fast and memory-bounded.
- Each ingest replaces its table and its previous rejects in one transaction: re-running is
  idempotent and a failure half-way leaves the previous table untouched.
- An input with no loadable row, or with far fewer than the table it would replace (a header-only
  export, a truncated transfer), is refused inside that transaction before the swap
  (`ShrinkRefused`): the good table and everything built from it stay as they were.

Plain Python: knows nothing of Dagster.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from recsys_assets.config import DEFAULT_MAX_QUANTITY, DEFAULT_MAX_SHRINK
from recsys_assets.text import count
from recsys_assets.warehouse import reader
from recsys_assets.warehouse.reader import IngestError
from recsys_assets.warehouse.tables import scalar, transaction

__all__ = [
    "REJECTED_ROWS_DDL",
    "SOURCE_NAMES",
    "IngestError",
    "IngestResult",
    "Limits",
    "ShrinkRefused",
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

# Timestamps are stored as naive TIMESTAMPs meaning Korea Standard Time, UTC+09:00 (the platform's
# clock; values without an offset have always meant this). A fixed offset rather than Asia/Seoul,
# so a value without offset is never moved by historical daylight-saving rules (1987-88).
STORED_UTC_OFFSET = "+09:00"
_STORAGE_TZ = "Etc/GMT-9"  # POSIX sign convention: this *is* UTC+09:00

# Parquet column types whose values `_checked_sql` casts to DOUBLE directly, not through text.
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")

# An id longer than this is a pasted value, not a key.
MAX_ID_CHARS = 200
# Unicode control, format (zero-width, BOM, bidi) and line/paragraph separators: invisible in ids.
_ID_FORBIDDEN = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"


class ShrinkRefused(IngestError):
    """The input is empty or far smaller than the table it would replace; nothing was changed."""

    def __init__(self, message: str, *, table: str, previous_rows: int, new_rows: int) -> None:
        super().__init__(message)
        self.table = table
        self.previous_rows = previous_rows
        self.new_rows = new_rows


@dataclass(frozen=True)
class Limits:
    """Per-call bounds: text length (restaurants/products), order quantity, how much smaller than
    the table it replaces an input may be."""

    max_text_chars: int | None = None
    max_quantity: float = DEFAULT_MAX_QUANTITY
    max_shrink: float = DEFAULT_MAX_SHRINK
    allow_shrink: bool = False


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


def _map_columns(
    con: duckdb.DuckDBPyConnection, path: Path, raw: reader.RawInput, table: str
) -> dict[str, str | None]:
    """Map each wanted (normalized) column to the file's column name; None if optional + absent."""
    return reader.map_columns(con, path, raw, _REQUIRED[table], _OPTIONAL[table])


def _clean(mapping: dict[str, str | None], col: str) -> str:
    """SQL for the trimmed value of `col` with '' as NULL; NULL if the optional column is absent."""
    actual = mapping[col]
    if actual is None:
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF({_trimmed(f'CAST(r.{_qi(actual)} AS VARCHAR)')}, '')"


def _trimmed(expr: str) -> str:
    """SQL for `trim(expr, _TRIM_CHARS)`, computed only for a value whose first or last character
    is one of them (trim and left/right count code points, so the result is the same): DuckDB's
    trim with a character set cost ~1 s per million values, most of a 10M-line orders ingest."""
    ends = " OR ".join(
        f"position({side}({expr}, 1) IN '{_TRIM_CHARS}') > 0" for side in ("left", "right")
    )
    return f"CASE WHEN {ends} THEN trim({expr}, '{_TRIM_CHARS}') ELSE {expr} END"


def _bad_id(*exprs: str) -> str:
    """True when an id holds control/format characters (NUL, zero-width space, ...) or is absurdly
    long: such ids look identical to clean ones yet never match them. One regex over the ids
    joined (they are not NULL here): a pattern of one character class matches the joined text
    iff it matches one of them, and each regex call costs ~0.1 CPU-s per million values."""
    too_long = " OR ".join(f"length({e}) > {MAX_ID_CHARS}" for e in exprs)
    return f"(regexp_matches({' || '.join(exprs)}, '{_ID_FORBIDDEN}') OR {too_long})"


def _stored_ts(expr: str) -> str:
    """Text -> TIMESTAMP in the stored time zone (needs the session time zone set to it too, see
    `_session_timezone`): a value with an offset or zone (`+09:00`, `Z`, `-05:00`, `Asia/Tokyo`)
    is converted, a value without one is taken as already being in that zone and kept as is."""
    return f"timezone('{_STORAGE_TZ}', TRY_CAST({expr} AS TIMESTAMPTZ))"


@contextmanager
def _session_timezone(con: duckdb.DuckDBPyConnection, tz: str) -> Iterator[None]:
    """Parse naive timestamps in `tz` for the duration; the connection's own setting is restored."""
    before = scalar(con, "SELECT current_setting('TimeZone')")
    con.execute("SET TimeZone = ?", [tz])
    try:
        yield
    finally:
        con.execute("SET TimeZone = ?", [before])


def _plausible(expr: str) -> str:
    """False, never NULL, for an implausible value: year() of 'infinity' is NULL, and
    `NOT NULL` would have let it through (stored as 9999-12-31)."""
    return f"coalesce(year({expr}) BETWEEN {MIN_PLAUSIBLE_YEAR} AND {MAX_PLAUSIBLE_YEAR}, false)"


def _checked_sql(
    table: str,
    mapping: dict[str, str | None],
    raw: reader.RawInput,
    limits: Limits,
    types: dict[str, str] | None = None,
) -> str:
    """One SELECT producing row number, cleaned/typed columns and the first failing reason.

    The raw-row JSON is built later, only for rejected rows (not for 10M good ones). Each table's
    rules are one SQL template, read top to bottom in the order they are tried. ``types``: the raw
    table's column types (DESCRIBE), for the typed timestamps of a Parquet file.
    """
    cols = ",\n            ".join(f"{_clean(mapping, c)} AS {c}" for c in mapping)
    ts_col = mapping.get("ordered_at") if table == "orders" else None
    # A Parquet TIMESTAMP needs no parsing: through text it comes back as itself in the stored zone
    # (only values beyond year 9999 differ, and those are implausible either way: bad_timestamp).
    typed_ts = ts_col is not None and (types or {}).get(ts_col) == "TIMESTAMP"
    if typed_ts:
        cols += f", r.{_qi(str(ts_col))} AS __typed_ts"
    # An integer quantity needs no parsing either: its text parses back to the same double.
    qty_col = mapping.get("quantity") if table == "orders" else None
    typed_qty = qty_col is not None and (types or {}).get(qty_col) in _INTEGER_TYPES
    if typed_qty:
        cols += f", CAST(r.{_qi(str(qty_col))} AS DOUBLE) AS __typed_qty"
    row_number, gaps_join = reader.row_number_sql(raw, "r")
    base = f"""
        SELECT {row_number} AS __row_number, r.rowid AS __rid,
            {cols}
        FROM {raw.table} r {gaps_join}
    """
    n = int(limits.max_text_chars or 0)  # only restaurants/products check text length
    max_qty = float(limits.max_quantity)
    if table == "restaurants":
        return _restaurants_sql(base, n)
    if table == "products":
        return _products_sql(base, n)
    if table == "orders":
        return _orders_sql(
            base,
            max_qty,
            "__typed_ts" if typed_ts else _stored_ts("ordered_at"),
            "__typed_qty" if typed_qty else "TRY_CAST(quantity AS DOUBLE)",
        )
    raise ValueError(table)


def _restaurants_sql(base: str, n: int) -> str:
    """The first failing rule names the reason; `n` caps name, menu and description."""
    return f"""
        WITH t AS ({base}),
        typed AS (
            SELECT *,
                row_number() OVER (PARTITION BY restaurant_id ORDER BY __row_number) AS __dup_rank,
                CAST({_stored_ts("signup_date")} AS DATE) AS __signup
            FROM t
        )
        SELECT __row_number, __rid,
            restaurant_id, name, coalesce(menu, '') AS menu, description, region,
            lower(size) AS size, __signup AS signup_date,
            CASE
                WHEN restaurant_id IS NULL THEN 'missing_id'
                WHEN {_bad_id("restaurant_id")} THEN 'bad_id'
                WHEN __dup_rank > 1 THEN 'duplicate_id'
                WHEN name IS NULL THEN 'missing_name'
                WHEN __signup IS NULL OR NOT {_plausible("__signup")} THEN 'bad_date'
                WHEN size IS NOT NULL AND lower(size) NOT IN {_RESTAURANT_SIZES} THEN 'bad_size'
                WHEN length(name) > {n} OR length(coalesce(menu, '')) > {n}
                     OR length(coalesce(description, '')) > {n} THEN 'oversized_text'
            END AS __reason
        FROM typed
        """


def _products_sql(base: str, n: int) -> str:
    """The first failing rule names the reason; `n` caps name and category."""
    return f"""
        WITH t AS ({base}),
        typed AS (
            SELECT *,
                row_number() OVER (PARTITION BY product_id ORDER BY __row_number) AS __dup_rank,
                TRY_CAST(unit_price AS DOUBLE) AS __price
            FROM t
        )
        SELECT __row_number, __rid,
            product_id, name, category, __price AS unit_price,
            CASE
                WHEN product_id IS NULL THEN 'missing_id'
                WHEN {_bad_id("product_id")} THEN 'bad_id'
                WHEN __dup_rank > 1 THEN 'duplicate_id'
                WHEN name IS NULL THEN 'missing_name'
                WHEN category IS NULL THEN 'missing_category'
                WHEN __price IS NULL OR NOT isfinite(__price) THEN 'bad_number'
                WHEN __price < 0 THEN 'negative_price'
                WHEN length(name) > {n} OR length(category) > {n} THEN 'oversized_text'
            END AS __reason
        FROM typed
        """


def _orders_sql(base: str, max_qty: float, ts: str, qty: str) -> str:
    """The first failing rule names the reason; an order line must name a loaded restaurant
    and product (the tables are ingested first). ``ts``, ``qty``: SQL for the stored timestamp
    and quantity. A line repeats an earlier one when a line with its (order, product) has a
    smaller row number: looked up only among the lines whose key hash repeats (a cheap integer
    GROUP BY; equal keys have equal hashes), not by a window over every line (~40 % of the
    statement at 10M lines)."""
    return f"""
        WITH t AS ({base}),
        repeated_hashes AS (
            SELECT hash(order_id, product_id) AS __h FROM t GROUP BY ALL HAVING count(*) > 1
        ),
        firsts AS (
            SELECT order_id, product_id, min(__row_number) AS __first FROM t
            WHERE hash(order_id, product_id) IN (SELECT __h FROM repeated_hashes)
            GROUP BY ALL
        ),
        typed AS (
            SELECT t.*,
                coalesce(t.__row_number > f.__first, false) AS __repeat,
                {qty} AS __qty,
                {ts} AS __ts
            FROM t LEFT JOIN firsts f ON f.order_id = t.order_id AND f.product_id = t.product_id
        )
        SELECT __row_number, __rid,
            typed.order_id, typed.restaurant_id, typed.product_id,
            __qty AS quantity, __ts AS ordered_at,
            CASE
                WHEN typed.order_id IS NULL OR typed.restaurant_id IS NULL
                     OR typed.product_id IS NULL THEN 'missing_id'
                WHEN {_bad_id("typed.order_id", "typed.restaurant_id", "typed.product_id")}
                     THEN 'bad_id'
                WHEN __repeat THEN 'duplicate_id'
                WHEN __qty IS NULL OR NOT isfinite(__qty) OR __qty > {max_qty!r} THEN 'bad_number'
                WHEN __qty <= 0 THEN 'non_positive_quantity'
                WHEN __ts IS NULL OR NOT {_plausible("__ts")} THEN 'bad_timestamp'
                WHEN kr.restaurant_id IS NULL THEN 'unknown_restaurant'
                WHEN kp.product_id IS NULL THEN 'unknown_product'
            END AS __reason
        FROM typed
        LEFT JOIN (SELECT DISTINCT restaurant_id FROM restaurants) kr
            ON kr.restaurant_id = typed.restaurant_id
        LEFT JOIN (SELECT DISTINCT product_id FROM products) kp
            ON kp.product_id = typed.product_id
        """


_TARGET_COLS = {
    "restaurants": (
        "restaurant_id",
        "name",
        "menu",
        "description",
        "region",
        "size",
        "signup_date",
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


def _insert_rejects(
    con: duckdb.DuckDBPyConnection, table: str, source: str, raw: reader.RawInput, checked: str
) -> None:
    """Replace `table`'s rejects: rows the checks failed plus records the reader set aside."""
    con.execute("DELETE FROM rejected_rows WHERE table_name = ?", [table])
    con.execute(
        "INSERT INTO rejected_rows "
        "SELECT ?, ?, row_number, reason, raw_row, current_localtimestamp() FROM ("
        f"  SELECT c.__row_number AS row_number, c.__reason AS reason, to_json(r) AS raw_row "
        f"  FROM {checked} c JOIN {raw.table} r ON r.rowid = c.__rid WHERE c.__reason IS NOT NULL"
        f"  UNION ALL SELECT row_number, reason, raw_row FROM {raw.rejects}"
        ") ORDER BY row_number",
        [table, source],
    )


def _reason_counts(
    con: duckdb.DuckDBPyConnection, checked: str, raw: reader.RawInput
) -> dict[str | None, int]:
    """Rows per reason (None = loaded), the reader's rejects included."""
    rows = con.execute(
        f"SELECT __reason, count(*) FROM {checked} GROUP BY __reason "
        f"UNION ALL SELECT reason, count(*) FROM {raw.rejects} GROUP BY reason"
    ).fetchall()
    counts: dict[str | None, int] = {}
    for reason, n in rows:
        counts[reason] = counts.get(reason, 0) + int(n)
    return counts


def _refuse_shrink(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    counts: dict[str | None, int],
    limits: Limits,
) -> None:
    """Refuse, before anything is replaced, an input that would empty or sharply shrink `table`.

    A header-only orders file once replaced 101,792 orders with none and emptied every table built
    from them; an operator who really means it says so with RECSYS_ALLOW_SHRINK=1.
    """
    if limits.allow_shrink:
        return
    new = counts.get(None, 0)
    old = 0
    if _table_exists(con, table):
        old = scalar(con, f"SELECT count(*) FROM {table}")
    if new == 0:
        problem = (
            f"no row to load would replace the {count(old, 'row')} of {table}"
            if old
            else f"no row to load into {table}"
        )
    elif new < old * (1 - limits.max_shrink):
        problem = (
            f"{count(new, 'row')} to load would replace the {count(old, 'row')} of {table} "
            f"({1 - new / old:.0%} fewer; RECSYS_MAX_SHRINK allows {limits.max_shrink:.0%})"
        )
    else:
        return
    read = sum(counts.values())
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted((r, n) for r, n in counts.items() if r))
    raise ShrinkRefused(
        f"{path}: refused: {problem}. {count(read, 'row')} read, {read - new:,} rejected"
        f"{f' ({reasons})' if reasons else ''}. The {table} table is left as it was. To load this "
        "input anyway: RECSYS_ALLOW_SHRINK=1 (or run config resources.recsys.config.allow_shrink: "
        "true).",
        table=table,
        previous_rows=int(old),
        new_rows=int(new),
    )


def _ingest(con: duckdb.DuckDBPyConnection, path: Path, table: str, limits: Limits) -> IngestResult:
    path = Path(path)
    if limits.max_text_chars is not None and limits.max_text_chars < 1:
        raise ValueError("max_text_chars must be >= 1")
    if not (math.isfinite(limits.max_quantity) and limits.max_quantity > 0):
        raise ValueError("max_quantity must be a finite number > 0")
    if not 0 <= limits.max_shrink <= 1:
        raise ValueError("max_shrink must be between 0 and 1")
    if table == "orders":
        for dep in ("restaurants", "products"):
            if not _table_exists(con, dep):
                raise IngestError(
                    f"{path}: cannot check orders, table {dep!r} is missing (ingest it first)"
                )
    raw_name = f"__ingest_raw_{table}"
    checked = f"__ingest_checked_{table}"

    # Row numbers come from the raw temp table's rowids, which follow insertion (= file) order
    # only when the table is committed before use (rowids inside an open transaction are
    # transaction-local) and insertion order is preserved; so load it in autocommit mode first,
    # and restore the connection's setting afterwards.
    keep_order = scalar(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute("SET preserve_insertion_order = true")
    try:
        raw = reader.load_raw(con, path, raw_name)
        mapping = _map_columns(con, path, raw, table)
        types = dict(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {raw.table})").fetchall()
        )
        with transaction(con):
            con.execute(REJECTED_ROWS_DDL)
            with _session_timezone(con, _STORAGE_TZ):
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {checked} AS "
                    + _checked_sql(table, mapping, raw, limits, types)
                )
            counts = _reason_counts(con, checked, raw)
            _refuse_shrink(con, path, table, counts, limits)
            _insert_rejects(con, table, str(path), raw, checked)
            _replace_target(con, table, checked)
            con.execute(f"DROP TABLE {checked}")
    finally:
        reader.drop_raw(con, raw_name)
        con.execute(f"SET preserve_insertion_order = {'true' if keep_order else 'false'}")

    by_reason = {reason: n for reason, n in counts.items() if reason is not None}
    loaded = counts.get(None, 0)
    rejected = sum(by_reason.values())
    return IngestResult(
        table=table,
        source_file=str(path),
        rows_read=loaded + rejected,
        rows_loaded=loaded,
        rows_rejected=rejected,
        rejected_by_reason=dict(sorted(by_reason.items())),
    )


def ingest_restaurants(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    max_text_chars: int = 2000,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    allow_shrink: bool = False,
) -> IngestResult:
    """Replace `restaurants` from `path`; bad rows go to `rejected_rows`."""
    return _ingest(
        con,
        path,
        "restaurants",
        Limits(max_text_chars=max_text_chars, max_shrink=max_shrink, allow_shrink=allow_shrink),
    )


def ingest_products(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    max_text_chars: int = 500,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    allow_shrink: bool = False,
) -> IngestResult:
    """Replace `products` from `path`; bad rows go to `rejected_rows`."""
    return _ingest(
        con,
        path,
        "products",
        Limits(max_text_chars=max_text_chars, max_shrink=max_shrink, allow_shrink=allow_shrink),
    )


def ingest_orders(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    max_quantity: float = DEFAULT_MAX_QUANTITY,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    allow_shrink: bool = False,
) -> IngestResult:
    """Replace `orders` from `path`; lines whose restaurant/product is not loaded are rejected,
    and so are quantities above `max_quantity` (`bad_number`: sums must stay finite)."""
    return _ingest(
        con,
        path,
        "orders",
        Limits(max_quantity=max_quantity, max_shrink=max_shrink, allow_shrink=allow_shrink),
    )
