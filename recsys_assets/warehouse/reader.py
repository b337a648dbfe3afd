"""The one reader of input files (CSV, CSV.gz, Parquet), shared by the ingest and `recsys label`.

Why one reader: two readers disagree on the same file. pandas read rows ending in a trailing comma
as having an extra leading index column and shifted every value one column to the right, while
DuckDB read the same file correctly; so both paths now go through DuckDB with the same settings.

Why this shape:
- The CSV dialect is pinned (comma, double quote, UTF-8, one header row) and the column names
  come from the header itself, so DuckDB's sniffer never guesses and a bad row is reported as
  itself instead of as "could not sniff the dialect".
- A row whose number of fields differs from the header's is set aside (reason `bad_field_count`,
  its record number and raw line), never shifted and never sinking the other rows. A trailing
  empty field on a row (`x,y,z,` under `a,b,c`) is read as the row's last delimiter, not shifted.
- Problems that make the rest of the file untrustworthy fail the whole file with the cause on the
  first line of the message: wrong encoding (including CP949 bytes that happen to be valid
  UTF-8), an unclosed quote, a line longer than MAX_LINE_BYTES.

Plain Python: knows nothing of Dagster.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from recsys_assets.warehouse.tables import scalar

__all__ = [
    "BAD_FIELD_COUNT",
    "MAX_LINE_BYTES",
    "IngestError",
    "RawInput",
    "drop_raw",
    "load_raw",
    "map_columns",
    "read_frame",
    "row_number_sql",
]

BAD_FIELD_COUNT = "bad_field_count"

# DuckDB's default (2 MB) turned one 3 MB menu cell into a whole-file failure. Lines up to this
# size are read, so an oversized value is rejected per row by the length checks; a longer line is
# almost surely an unclosed quote swallowing the rest of the file. Costs no memory until used.
MAX_LINE_BYTES = 64 << 20

# How much of the file the encoding checks look at.
_SAMPLE_BYTES = 1 << 16

_CP949_HINT = " (looks like CP949/EUC-KR; convert it, e.g. iconv -f cp949 -t utf-8)"


class IngestError(Exception):
    """A file is unusable as a whole; the message's first line names the file and the problem."""


@dataclass(frozen=True)
class RawInput:
    """The file as read: `table` (its columns, as text for CSV; rowid = order in the file) and
    `rejects` (row_number, reason, raw_row JSON) for the records the reader set aside."""

    table: str
    rejects: str
    n_rejected: int
    header: tuple[str, ...] = ()  # the CSV header as written (the table's names are made unique)

    @property
    def gaps(self) -> str:
        return f"{self.table}_gaps"


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(".parquet")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _sample(path: Path) -> bytes:
    """The first bytes of the file, cut at the last newline so no character is split."""
    try:
        with _open_binary(path) as fh:
            sample = fh.read(_SAMPLE_BYTES)
    except (OSError, EOFError):
        return b""
    if b"\n" in sample:
        sample = sample[: sample.rfind(b"\n")]
    return sample


def _encoding_hint(path: Path) -> str:
    """Guess what the file is if not UTF-8, so the error tells the operator what to convert from."""
    sample = _sample(path)
    try:
        sample.decode("utf-8")
        return ""  # the bad bytes are further in; no basis for a guess
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp949")
    except UnicodeDecodeError:
        return ""
    return _CP949_HINT


_HANGUL = re.compile("[\uac00-\ud7a3]")
# A CP949 Hangul syllable whose two bytes are also one valid UTF-8 character decodes to a code
# point in U+0080..U+023F (lead bytes C2..C8); Korean words are several syllables long.
_MOJIBAKE_RUN = re.compile("[\u0080-\u023f]{2,}")
_NON_ASCII = re.compile("[^\x00-\x7f]")


def _check_plausible_text(path: Path) -> None:
    """Refuse CP949 bytes that happen to be valid UTF-8 (짜짝짠 reads as ¥¦§ and would load).

    Heuristic, on the first 64 KB: the UTF-8 reading has no Hangul at all, most of its non-ASCII
    characters come in runs of Latin-1/Latin-Extended symbols, and the CP949 reading has Hangul.
    Real accented Latin text (café, Füße) has few such runs; Korean text read right has Hangul.
    """
    sample = _sample(path)
    try:
        text = sample.decode("utf-8-sig")
    except UnicodeDecodeError:
        return  # not UTF-8 at all: DuckDB reports it, with the hint from _encoding_hint
    if _HANGUL.search(text):
        return
    runs = _MOJIBAKE_RUN.findall(text)
    non_ascii = len(_NON_ASCII.findall(text))
    if not runs or sum(len(r) for r in runs) < 0.8 * non_ascii:
        return
    try:
        as_cp949 = sample.decode("cp949")
    except UnicodeDecodeError:
        return
    if not _HANGUL.search(as_cp949):
        return
    example = runs[0][:12]
    reread = example.encode("utf-8").decode("cp949", errors="replace")
    raise IngestError(
        f"{path}: wrong encoding: the bytes are valid UTF-8 but read as implausible text "
        f"({example!r}, which is {reread!r} in CP949){_CP949_HINT}"
    )


def _read_header(path: Path) -> list[str]:
    """Column names from the first record, as written (empty ones become columnN)."""
    try:
        with _open_binary(path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            first = next(csv.reader(text), None)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path}: wrong encoding, the file is not valid UTF-8{_encoding_hint(path)}: "
            f"the header line has {exc.reason}"
        ) from None
    except (csv.Error, OSError, EOFError) as exc:
        raise IngestError(f"{path}: unreadable header line: {exc}") from None
    if not first or all(not name.strip() for name in first):
        raise IngestError(f"{path}: empty file (no header)")
    return [name or f"column{i}" for i, name in enumerate(first)]


def _unique(names: list[str]) -> list[str]:
    """DuckDB column names must differ ignoring case: repeats get a suffix (map_columns still sees
    the header as written and refuses a repeated wanted column)."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, k = name, 1
        while candidate.lower() in seen:
            candidate, k = f"{name}_{k}", k + 1
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def _snippet(line: str | None) -> str:
    return repr((line or "")[:200])


def _fatal_reader_error(path: Path, kind: str, line: int, csv_line: str, message: str) -> str:
    """One line naming the real cause of a problem that invalidates the rest of the file."""
    if kind == "INVALID ENCODING":
        return (
            f"{path}: wrong encoding, the file is not valid UTF-8{_encoding_hint(path)}: "
            f"first bad record at line {line}"
        )
    if kind == "LINE SIZE OVER MAXIMUM":
        m = re.search(r"Actual Size:\s*(\d+)", message)
        size = f" ({int(m.group(1)):,} bytes)" if m else ""
        return (
            f"{path}: line {line} is longer than the {MAX_LINE_BYTES >> 20} MB limit{size}: "
            f"most likely an unclosed quote before it swallows the rest of the file"
        )
    if kind == "UNQUOTED VALUE":
        return (
            f"{path}: malformed CSV: unclosed or stray quote in the record at line {line} "
            f"({message.strip()}): {_snippet(csv_line)}; quote whole values and double any "
            f"quote inside them"
        )
    return (
        f"{path}: malformed CSV at line {line}: {kind.lower()}: {message.strip()}: "
        f"{_snippet(csv_line)}"
    )


def _duckdb_error(path: Path, exc: duckdb.Error) -> IngestError:
    """A DuckDB error as one line: the cause first, the offending line truncated."""
    msg = str(exc)
    if _is_parquet(path):
        return IngestError(f"{path}: unreadable Parquet file: {msg.splitlines()[0][:300]}")
    line = re.search(r"CSV Error on Line:\s*(\d+)", msg)
    where = f" at line {line.group(1)}" if line else ""
    # DuckDB: "CSV Error on Line: N", "Original Line: <the whole line>", the cause, hints.
    skip = ("CSV Error", "Original Line:", "Possible", "*", "LINE ", " ", "\t")
    causes = [ln for ln in msg.splitlines() if ln.strip() and not ln.startswith(skip)]
    cause = (causes[0] if causes else msg.splitlines()[0])[:300]
    if "unicode" in msg.lower():
        return IngestError(
            f"{path}: wrong encoding, the file is not valid UTF-8{_encoding_hint(path)}{where}"
        )
    return IngestError(f"{path}: malformed CSV{where}: {cause}")


def load_raw(con: duckdb.DuckDBPyConnection, path: Path, raw_table: str) -> RawInput:
    """Copy the file into temp table `raw_table` as-is (insertion order = file order).

    The caller must have `preserve_insertion_order` on and be outside a transaction, so rowids
    follow the file. Drop the result with `drop_raw`.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: empty file (no header)")
    raw = RawInput(table=raw_table, rejects=f"{raw_table}_rejects", n_rejected=0)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {raw.rejects} "
        "(row_number BIGINT, reason VARCHAR, raw_row VARCHAR)"
    )
    if _is_parquet(path):
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw_table} AS SELECT * FROM read_parquet(?)",
                [str(path)],
            )
        except duckdb.Error as exc:
            raise _duckdb_error(path, exc) from exc
        return raw
    _check_plausible_text(path)
    raw = replace(raw, header=tuple(_read_header(path)))
    columns = dict.fromkeys(_unique(list(raw.header)), "VARCHAR")
    errors, scans = f"{raw_table}_errors", f"{raw_table}_scans"
    con.execute(f"DROP TABLE IF EXISTS {errors}")
    con.execute(f"DROP TABLE IF EXISTS {scans}")
    try:
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw_table} AS SELECT * FROM read_csv(?, columns=?, "
                "header=true, delim=',', quote='\"', escape='\"', encoding='utf-8', "
                f"auto_detect=false, max_line_size={MAX_LINE_BYTES}, ignore_errors=true, "
                f"store_rejects=true, rejects_table='{errors}', rejects_scan='{scans}')",
                [str(path), columns],
            )
        except duckdb.Error as exc:
            raise _duckdb_error(path, exc) from exc
        return _collect_rejects(con, path, raw, errors)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {errors}")
        con.execute(f"DROP TABLE IF EXISTS {scans}")


def _collect_rejects(
    con: duckdb.DuckDBPyConnection, path: Path, raw: RawInput, errors: str
) -> RawInput:
    """Field-count errors become rejects; any other reader error fails the file."""
    fatal = con.execute(
        f"SELECT error_type, line, csv_line, error_message FROM {errors} "
        "WHERE error_type NOT IN ('TOO MANY COLUMNS', 'MISSING COLUMNS') ORDER BY line LIMIT 1"
    ).fetchone()
    if fatal:
        kind, line, csv_line, message = fatal
        raise IngestError(_fatal_reader_error(path, kind, int(line), csv_line, message or ""))
    last = scalar(con, f"SELECT max(line) FROM {errors}")
    if last is None:
        return raw
    # DuckDB's line numbers count blank lines, which it skips when reading: translate them to
    # record numbers (1 = first row after the header), as the rows read are numbered.
    blanks = f"{raw.table}_blanks"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {blanks} (line BIGINT)")
    blank_lines = _blank_lines(path, last)
    if blank_lines:
        con.executemany(f"INSERT INTO {blanks} VALUES (?)", [[n] for n in blank_lines])
    con.execute(  # a short row has one error per missing column: one reject per line
        f"INSERT INTO {raw.rejects} "
        f"SELECT e.line - 1 - (SELECT count(*) FROM {blanks} b WHERE b.line < e.line), ?, "
        "json_object('csv_line', any_value(e.csv_line), 'error', any_value(e.error_message)) "
        f"FROM {errors} e GROUP BY e.line ORDER BY e.line",
        [BAD_FIELD_COUNT],
    )
    n = scalar(con, f"SELECT count(*) FROM {raw.rejects}")
    # Good rows are numbered by filling the gaps the rejects left: for the j-th reject (1-based)
    # at record r_j, r_j - j good rows come before it.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {raw.gaps} AS "
        "SELECT gap, max(skipped) AS skipped FROM ("
        "  SELECT row_number - row_number() OVER (ORDER BY row_number) AS gap,"
        "         row_number() OVER (ORDER BY row_number) AS skipped"
        f"  FROM {raw.rejects}) GROUP BY gap"
    )
    return replace(raw, n_rejected=int(n))


def _blank_lines(path: Path, last: int) -> list[int]:
    """DuckDB line numbers (header = 1) of the blank lines before line `last`.

    A byte scan first: most files have no empty line at all. Otherwise Python's csv module walks
    the records (same quoting rules, so an empty line inside a quoted value is not counted).
    """
    with _open_binary(path) as fh:
        tail, found = b"", False
        while chunk := fh.read(1 << 24):
            block = (tail + chunk).replace(b"\r\n", b"\n")
            if b"\n\n" in block:
                found = True
                break
            tail = block[-1:]
    if not found:
        return []
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))
    blank = []
    with _open_binary(path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        for line, row in enumerate(csv.reader(text), start=1):
            if line >= last:
                break
            if not row:
                blank.append(line)
    return blank


def row_number_sql(raw: RawInput, alias: str = "r") -> tuple[str, str]:
    """(expression, join clause): the record number (1 = first row after the header) of `alias`."""
    if not raw.n_rejected:
        return f"{alias}.rowid + 1", ""
    return (
        f"{alias}.rowid + 1 + coalesce(__gaps.skipped, 0)",
        f"ASOF LEFT JOIN {raw.gaps} __gaps ON {alias}.rowid >= __gaps.gap",
    )


def drop_raw(con: duckdb.DuckDBPyConnection, raw_table: str) -> None:
    for suffix in ("", "_rejects", "_gaps", "_blanks", "_errors", "_scans"):
        con.execute(f"DROP TABLE IF EXISTS {raw_table}{suffix}")


def _norm_col(name: str) -> str:
    return name.strip().strip("\ufeff").strip().lower()


def map_columns(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    raw: RawInput,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> dict[str, str | None]:
    """Map each wanted (normalized) column to the raw table's column; None if optional + absent."""
    actual = [row[0] for row in con.execute(f"DESCRIBE {raw.table}").fetchall()]
    written = list(raw.header) if len(raw.header) == len(actual) else actual
    by_norm: dict[str, list[tuple[str, str]]] = {}
    for col, name in zip(actual, written, strict=True):
        by_norm.setdefault(_norm_col(name), []).append((col, name))
    missing = [c for c in required if c not in by_norm]
    if missing:
        raise IngestError(
            f"{path}: missing required column(s) {', '.join(missing)} (found: {', '.join(written)})"
        )
    mapping: dict[str, str | None] = {}
    for col in required + optional:
        hits = by_norm.get(col)
        if hits and len(hits) > 1:
            names = ", ".join(name for _, name in hits)
            raise IngestError(f"{path}: column {col!r} appears more than once ({names})")
        mapping[col] = hits[0][0] if hits else None
    return mapping


def read_frame(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()):
    """The whole file as a pandas DataFrame (`recsys label`), read exactly as the ingest reads it.

    Wanted columns are renamed to their canonical names; other columns are kept as they are. A
    record with a wrong number of fields fails the file with its line number: labels are written
    row for row next to the input, so a silently dropped row would be as wrong as a shifted one.
    """
    path = Path(path)
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        raw = load_raw(con, path, "__read_frame")
        mapping = map_columns(con, path, raw, required, optional)
        if raw.n_rejected:
            first = con.execute(
                f"SELECT row_number, raw_row FROM {raw.rejects} ORDER BY 1 LIMIT 3"
            ).fetchall()
            examples = "; ".join(
                f"line {n + 1}: {_snippet(json.loads(r)['csv_line'])}" for n, r in first
            )
            raise IngestError(
                f"{path}: {raw.n_rejected} record(s) do not have the header's {len(raw.header)} "
                f"fields (first at line {first[0][0] + 1}); fix or remove them, nothing was read. "
                f"{examples}"
            )
        df = con.execute(f"SELECT * FROM {raw.table} ORDER BY rowid").df()
    finally:
        con.close()
    if not _is_parquet(path):
        df = df.fillna("")  # empty CSV cells are empty strings, as they were written
    return df.rename(columns={actual: col for col, actual in mapping.items() if actual})
