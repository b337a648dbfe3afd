"""The labeling ledger: a database table that remembers every paid LLM answer.

It replaces the notebook's pickle checkpoint, whose failure modes motivated each choice here:

* the pickle was rewritten whole every 100 rows, so a crash lost up to 99 paid calls -> here
  every finished call is committed on its own (one small transaction, well under 1 ms on SQLite);
* it resumed at a row *index*, so a changed input file resumed at the wrong row -> here the key is
  a hash of the normalized input text plus a fingerprint of what shapes the answer (model,
  endpoint, the rendered prompt, schema, temperature, items per call: llm.fingerprint_params),
  never a position;
* it was deleted on success -> here nothing is deleted unless `prune` is asked to, so an
  unchanged restaurant is never paid for twice and old prompt versions stay queryable;
* it was a pickle (unsafe to load, opaque) -> here it is a plain table any SQL tool can read.

Where it lives is a SQLAlchemy URL (`ledger_url`): a SQLite file under RECSYS_HOME by default
(WAL, one process or a few on one machine), PostgreSQL (``RECSYS_LEDGER_URL=postgresql://...``)
when many workers on many machines label at once. Both get the same tables and the same SQL.
A new SQLite ledger is created only where no file exists; an existing file that is empty (a
truncated ledger) or not a ledger is refused with LedgerError, never silently started afresh
(that would pay for every answer again).

Statuses: ``ok`` and ``invalid`` (the model answered, but not in the schema even after one re-ask)
are final; ``failed`` (transport errors, retries exhausted) is retried on the next run.

Claims (table ``claims``) stop two workers from paying for the same key: a worker claims a key
before calling the model (a lease of RECSYS_LEDGER_LEASE_SECONDS, default 600 s); a worker that
finds a key claimed by a live peer skips it and reads the peer's answer later. A claim row is never
deleted when the answer lands, it turns ``done`` in the same transaction: that is what lets a
racing claim see the answer even under PostgreSQL's READ COMMITTED (ON CONFLICT DO UPDATE
re-checks the newest row version). A crashed worker's claim ends with its lease, or at once when
the claimant is a dead process on this same host.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import re
import socket
import threading
import unicodedata
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recsys_assets.config import DEFAULT_LEASE_SECONDS

STATUSES = ("ok", "invalid", "failed")
FINAL_STATUSES = ("ok", "invalid")
SCHEMA_VERSION = 3  # 2: the claims table; 3: cached tokens, mode, the batch tables
LEDGER_URL_ENV = "RECSYS_LEDGER_URL"
LEASE_ENV = "RECSYS_LEDGER_LEASE_SECONDS"

_COLUMNS = (
    "input_key",
    "fingerprint",
    "status",
    "industry",
    "confidence",
    "reason",
    "raw_response",
    "error",
    "attempts",
    "tokens_in",
    "tokens_out",
    "tokens_cached",
    "cost_usd",
    "latency_ms",
    "model",
    "prompt_version",
    "mode",
    "created_at",
    "updated_at",
)
# Columns added after schema version 2, with their DDL: an older ledger gets them on open.
_ADDED_COLUMNS = (
    ("tokens_cached", "INTEGER NOT NULL DEFAULT 0"),
    ("mode", "TEXT NOT NULL DEFAULT 'online'"),
)
BATCH_STATES = ("pending", "uploaded", "submitted", "closed", "abandoned")
OPEN_BATCH_STATES = ("pending", "uploaded", "submitted")


def _ddl(postgres: bool) -> list[str]:
    """One schema for both backends; only the float type and SQLite's WITHOUT ROWID differ
    (PostgreSQL's REAL is 4 bytes, too coarse for summed costs)."""
    real = "DOUBLE PRECISION" if postgres else "REAL"
    no_rowid = "" if postgres else " WITHOUT ROWID"
    return [
        f"""CREATE TABLE IF NOT EXISTS labels (
    input_key      TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('ok', 'invalid', 'failed')),
    industry       TEXT,
    confidence     {real},
    reason         TEXT,
    raw_response   TEXT,
    error          TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    tokens_in      INTEGER NOT NULL DEFAULT 0,
    tokens_out     INTEGER NOT NULL DEFAULT 0,
    tokens_cached  INTEGER NOT NULL DEFAULT 0,
    cost_usd       {real} NOT NULL DEFAULT 0,
    latency_ms     {real},
    model          TEXT,
    prompt_version TEXT,
    mode           TEXT NOT NULL DEFAULT 'online',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (input_key, fingerprint)
){no_rowid}""",
        "CREATE INDEX IF NOT EXISTS labels_status ON labels (status)",
        "CREATE INDEX IF NOT EXISTS labels_updated ON labels (updated_at)",
        """CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint TEXT PRIMARY KEY,
    params      TEXT NOT NULL,
    created_at  TEXT NOT NULL
)""",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS claims (
    input_key   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'released', 'done')),
    owner       TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (input_key, fingerprint)
){no_rowid}""",
        "CREATE INDEX IF NOT EXISTS claims_owner ON claims (owner, state)",
        # One row per Batch API job, written (state `pending`) before anything is uploaded, then
        # updated with each id the provider hands back: a killed run resumes from here.
        f"""CREATE TABLE IF NOT EXISTS batches (
    batch_key       TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in BATCH_STATES)})),
    requests        INTEGER NOT NULL,
    input_file_id   TEXT,
    batch_id        TEXT,
    provider_status TEXT,
    output_file_id  TEXT,
    error_file_id   TEXT,
    output_recorded INTEGER NOT NULL DEFAULT 0,
    note            TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
)""",
        "CREATE INDEX IF NOT EXISTS batches_open ON batches (fingerprint, state)",
        # Which input each request (custom_id) of a batch carries: a key in an open batch is in
        # flight, never put in another batch.
        f"""CREATE TABLE IF NOT EXISTS batch_rows (
    batch_key   TEXT NOT NULL,
    custom_id   TEXT NOT NULL,
    input_key   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (batch_key, input_key)
){no_rowid}""",
        "CREATE INDEX IF NOT EXISTS batch_rows_key ON batch_rows (fingerprint, input_key)",
    ]


# A final answer is never overwritten: two processes racing on one key keep the first final
# answer, and a later `failed` cannot clobber an `ok`. A `failed` row is upgraded in place.
_UPSERT = f"""
INSERT INTO labels ({", ".join(_COLUMNS)})
VALUES ({", ".join(":" + c for c in _COLUMNS)})
ON CONFLICT (input_key, fingerprint) DO UPDATE SET
    status = excluded.status, industry = excluded.industry, confidence = excluded.confidence,
    reason = excluded.reason, raw_response = excluded.raw_response, error = excluded.error,
    attempts = labels.attempts + excluded.attempts,
    tokens_in = labels.tokens_in + excluded.tokens_in,
    tokens_out = labels.tokens_out + excluded.tokens_out,
    tokens_cached = labels.tokens_cached + excluded.tokens_cached,
    cost_usd = labels.cost_usd + excluded.cost_usd,
    latency_ms = excluded.latency_ms, model = excluded.model,
    prompt_version = excluded.prompt_version, mode = excluded.mode,
    updated_at = excluded.updated_at
WHERE labels.status = 'failed'
"""

_FINAL_EXISTS = (
    "EXISTS (SELECT 1 FROM labels l WHERE l.input_key = :k AND l.fingerprint = :fp "
    "AND l.status IN ('ok', 'invalid'))"
)

# Take a key unless it has a final answer or a live claim of someone else. On a conflict the
# WHERE is evaluated on the newest row version (PostgreSQL locks it first), so a peer's `done`
# committed after this statement's snapshot still wins.
_CLAIM = f"""
INSERT INTO claims (input_key, fingerprint, state, owner, lease_until, updated_at)
SELECT CAST(:k AS TEXT), CAST(:fp AS TEXT), 'claimed', CAST(:owner AS TEXT),
       CAST(:lease_until AS TEXT), CAST(:now AS TEXT)
WHERE NOT {_FINAL_EXISTS}
ON CONFLICT (input_key, fingerprint) DO UPDATE SET
    state = 'claimed', owner = excluded.owner, lease_until = excluded.lease_until,
    updated_at = excluded.updated_at
WHERE (claims.state = 'released'
       OR (claims.state = 'claimed'
           AND (claims.owner = excluded.owner OR claims.lease_until < excluded.updated_at)))
  AND NOT {_FINAL_EXISTS}
"""

# Take over the claim of a claimant known to be dead (a crashed process on this host).
_STEAL = """
UPDATE claims SET owner = :owner, lease_until = :lease_until, updated_at = :now
WHERE input_key = :k AND fingerprint = :fp AND state = 'claimed' AND owner = :dead
"""

_CLAIM_DONE = """
INSERT INTO claims (input_key, fingerprint, state, owner, lease_until, updated_at)
VALUES (:k, :fp, 'done', :owner, :now, :now)
ON CONFLICT (input_key, fingerprint) DO UPDATE SET
    state = 'done', owner = excluded.owner, lease_until = excluded.lease_until,
    updated_at = excluded.updated_at
"""

# A failure hands the key back (retried by the next run or by a waiting peer), but never
# un-does a `done` and never releases a claim someone else has taken over.
_CLAIM_RELEASE = """
UPDATE claims SET state = 'released', lease_until = :now, updated_at = :now
WHERE input_key = :k AND fingerprint = :fp AND owner = :owner AND state = 'claimed'
"""


class LedgerError(RuntimeError):
    """The ledger database cannot be opened or used; the message never holds a password."""


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def normalize_text(value: object) -> str:
    """NFKC + collapsed whitespace, so cosmetic edits (full-width chars, double spaces) reuse answers."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):  # NaN from pandas
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    return " ".join(text.split())


def input_key(name: object, menu: object, description: object = None) -> str:
    """sha256 of the normalized fields; the field boundaries are kept (JSON list) so 'a|b' != 'ab'."""
    payload = json.dumps(
        [normalize_text(name), normalize_text(menu), normalize_text(description)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def fingerprint(params: dict[str, Any]) -> str:
    """Short stable hash of the parameters that change the answer (not retries or timeouts)."""
    blob = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# -- URLs ---------------------------------------------------------------------------------------
def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).expanduser().absolute()}"


def ledger_url(settings: Any) -> str:
    """settings.ledger.url (RECSYS_LEDGER_URL), else the SQLite file under RECSYS_HOME."""
    configured = getattr(settings, "ledger_url", None)
    if configured:
        return str(configured)
    return sqlite_url(settings.ledger_path)


def open_ledger(settings: Any) -> Ledger:
    """The ledger the settings name, with their lease: the one way the CLI and the asset open it."""
    return Ledger.from_url(ledger_url(settings), lease_seconds=settings.ledger.lease_seconds)


def open_existing_ledger(settings: Any) -> Ledger | None:
    """The ledger the settings name, or None when it is a SQLite file not created yet: a reader
    that must leave no trace (a dry run) opens it this way. A PostgreSQL ledger is always opened
    (its tables are created when missing, as by any worker)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(ledger_url(settings))
    except ArgumentError:  # not a URL: open_ledger raises the LedgerError that says so
        return open_ledger(settings)
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).exists()
    ):
        return None
    return open_ledger(settings)


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*(?P<tail>@)", re.I)
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|sslpassword)=)[^&\s]*", re.I)


def _mask(text: str) -> str:
    text = _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", text)
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", text)


def safe_url(url: object) -> str:
    """The URL with its password masked: the only form that may be logged, printed or stored."""
    from sqlalchemy.engine import make_url

    try:
        return _mask(make_url(str(url)).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - unparsable: mask anything shaped like user:password@ or password=
        return _mask(str(url))


def _scrub(text: object, secrets: Iterable[str | None]) -> str:
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return _mask(out)


_HOST = socket.gethostname()
_LIVE_OWNERS: set[str] = set()  # owners of this process's open ledgers


def _owner_is_dead_here(owner: str) -> bool:
    """True only when the claimant is certainly gone: a process of this host that no longer
    exists, or a ledger of this very process that is closed (or was garbage-collected).

    Claims of other hosts (or of live or unknown processes) are left to their lease.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but not ours (EPERM): alive
        return False
    return False


SQLITE_HEADER = b"SQLite format 3\x00"


def _ensure_sqlite_ledger(path: Path) -> None:
    """Create the ledger file only where no file exists, and refuse a file that is not a ledger.

    SQLite silently treats an empty file (a truncated ledger) as a new database, so without this
    check every answer would be paid for again with no warning. The new file is built complete
    under a temporary name and hard-linked into place (which fails if the name exists), so a
    concurrent worker never sees a half-made ledger and mistakes it for a truncated one.
    """
    if not path.exists() and not path.is_symlink():
        _create_sqlite_ledger(path)
    _check_sqlite_ledger(path)


def _create_sqlite_ledger(path: Path) -> None:
    import sqlite3

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = WAL")  # persistent: stored in the file header
            con.execute("BEGIN")
            for statement in _ddl(postgres=False):
                con.execute(statement)
            con.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            con.execute("COMMIT")
        finally:
            con.close()  # the last connection checkpoints and removes the -wal file
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # a concurrent worker created it first: use theirs
        except OSError:  # no hard links on this filesystem: rename (tiny window, same result)
            if not path.exists():
                os.replace(tmp, path)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot create the labeling ledger at {path}: {exc}") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def _check_sqlite_ledger(path: Path) -> None:
    """An existing file must be an SQLite database holding the ledger's `labels` table."""
    import sqlite3
    from urllib.parse import quote

    restore = (
        "Restore it from a backup, or move it away to start an empty ledger "
        "(every restaurant would then be paid for again)."
    )
    if path.is_dir():
        raise LedgerError(f"the labeling ledger path {path} is a directory, not a ledger file")
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise LedgerError(f"cannot read the labeling ledger {path}: {exc.strerror}") from None
    if not header:
        raise LedgerError(
            f"the labeling ledger {path} is empty (0 bytes), not a ledger (truncated?). {restore}"
        )
    if header != SQLITE_HEADER:
        raise LedgerError(f"{path} is not a labeling ledger (not an SQLite database). {restore}")
    try:
        con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            tables = {r[0] for r in rows}
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"{path} is not a readable labeling ledger ({exc}). {restore}") from None
    if "labels" not in tables:
        found = ", ".join(sorted(tables)) or "none"
        raise LedgerError(
            f"{path} is an SQLite database but not a labeling ledger (no `labels` "
            f"table; its tables: {found}). {restore}"
        )


@dataclass(frozen=True)
class LedgerRecord:
    input_key: str
    status: str
    industry: str | None = None
    confidence: float | None = None
    reason: str | None = None
    raw_response: str | None = None
    error: str | None = None
    attempts: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    tokens_cached: int = 0  # input tokens the provider served from its prompt cache
    mode: str = "online"  # online | batch (the Batch API, at its price)


@dataclass(frozen=True)
class BatchRecord:
    """One Batch API job as the ledger knows it (ids are None until the provider gave them)."""

    batch_key: str
    fingerprint: str
    state: str
    requests: int
    input_file_id: str | None
    batch_id: str | None
    provider_status: str | None
    output_file_id: str | None
    error_file_id: str | None
    output_recorded: bool
    note: str | None
    created_at: str


@dataclass(frozen=True)
class StoredLabel:
    input_key: str
    status: str
    industry: str | None
    confidence: float | None
    updated_at: str


@dataclass(frozen=True)
class Claim:
    input_key: str
    state: str
    owner: str
    lease_until: str


class Ledger:
    """One connection shared by the engine's worker threads (calls are serialized by a lock).

    `Ledger(path)` opens a SQLite file; `Ledger.from_url(url)` any SQLAlchemy URL (sqlite or
    postgresql; a bare ``postgresql://`` uses psycopg 3). The connection runs in autocommit and
    every write is an explicit short transaction: ``BEGIN IMMEDIATE`` on SQLite (take the write
    lock up front, so waiting is busy_timeout's job and never a failed lock upgrade), ``BEGIN``
    (READ COMMITTED) on PostgreSQL, where the upserts' conflict handling does the arbitration.

    SQLite: WAL lets a second process read and wait for the write lock (busy_timeout) instead of
    failing. synchronous=NORMAL: a committed transaction survives a killed process (the OS has
    it); only a power loss can drop the last few commits, which would merely be paid for again.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        url: str | None = None,
        busy_timeout_ms: int = 30_000,
        lease_seconds: float | None = None,
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("give exactly one of a SQLite path or a url")
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url

        raw_url = sqlite_url(path) if path is not None else str(url)
        try:
            parsed = make_url(raw_url)
        except Exception:  # noqa: BLE001 - whatever SQLAlchemy raises, the user gets one line
            raise LedgerError(f"not a database URL: {safe_url(raw_url)}") from None
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        self._secrets = [parsed.password] + [
            str(v)
            for k, v in parsed.query.items()
            if k.lower() in ("password", "passwd", "sslpassword")
        ]
        self.url = safe_url(parsed.render_as_string(hide_password=False))
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise LedgerError(f"the ledger supports sqlite and postgresql URLs, got {self.url}")
        self.is_sqlite = self.dialect == "sqlite"
        self.path: Path | None = None
        self.lease_seconds = float(lease_seconds) if lease_seconds else DEFAULT_LEASE_SECONDS
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        _LIVE_OWNERS.add(self.owner)
        weakref.finalize(self, _LIVE_OWNERS.discard, self.owner)
        self._lock = threading.Lock()
        self._closed = False

        kwargs: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                self.path = Path(parsed.database)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _ensure_sqlite_ledger(self.path)
            kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        else:
            kwargs["connect_args"] = {
                "connect_timeout": max(1, busy_timeout_ms // 1000),
                "application_name": "recsys-ledger",
            }
        self._engine = create_engine(parsed, **kwargs)
        if self.is_sqlite:

            @event.listens_for(self._engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
                cur.close()

        try:
            self._conn = self._engine.connect()
            self._create_schema()
        except Exception as exc:  # noqa: BLE001 - any driver's error becomes a LedgerError with the cause
            self._engine.dispose()
            raise LedgerError(
                f"cannot open the labeling ledger at {self.url}: "
                f"{_scrub(f'{type(exc).__name__}: {exc}', self._secrets)[:600]}"
            ) from None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Ledger:
        return cls(url=url, **kwargs)

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    __str__ = __repr__

    # -- plumbing ----------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction on the shared connection (caller holds no lock)."""
        with self._lock:
            if self._closed:
                raise LedgerError(f"the ledger {self.url} is closed")
            self._conn.exec_driver_sql("BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(Exception):  # a dead connection: keep the first error
                    self._conn.exec_driver_sql("ROLLBACK")
                raise
            self._conn.exec_driver_sql("COMMIT")

    def _read(
        self, sql: str, params: dict[str, Any] | None = None, *, expanding: Sequence[str] = ()
    ) -> list[Any]:
        with self._lock:
            if self._closed:
                raise LedgerError(f"the ledger {self.url} is closed")
            return list(self._conn.execute(_text(sql, expanding), params or {}).fetchall())

    def _create_schema(self) -> None:
        with self._tx() as conn:
            if not self.is_sqlite:
                # Two workers starting at once would race on CREATE TABLE IF NOT EXISTS.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7301594201)")
            for statement in _ddl(postgres=not self.is_sqlite):
                conn.exec_driver_sql(statement)
            self._add_columns(conn)
            conn.execute(
                _text(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', :v) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                    "WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)"
                ),
                {"v": str(SCHEMA_VERSION)},
            )

    def _add_columns(self, conn: Any) -> None:
        """Bring a ledger of an older schema up to date (columns only ever added, never changed)."""
        if self.is_sqlite:
            have = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(labels)").fetchall()}
            for name, ddl in _ADDED_COLUMNS:
                if name not in have:
                    conn.exec_driver_sql(f"ALTER TABLE labels ADD COLUMN {name} {ddl}")
        else:
            for name, ddl in _ADDED_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE labels ADD COLUMN IF NOT EXISTS {name} {ddl}")

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Hand back this instance's unfinished claims (nobody waits for their lease), close."""
        if self._closed:
            return
        with (
            contextlib.suppress(Exception),
            self._tx() as conn,
        ):  # broken: the leases expire by themselves
            conn.execute(
                _text(
                    "UPDATE claims SET state = 'released', lease_until = :now, "
                    "updated_at = :now WHERE owner = :owner AND state = 'claimed'"
                ),
                {"now": utcnow(), "owner": self.owner},
            )
        with self._lock:
            self._closed = True
            _LIVE_OWNERS.discard(self.owner)
            try:
                self._conn.close()
            finally:
                self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------
    def register_fingerprint(self, fp: str, params: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                _text(
                    "INSERT INTO fingerprints (fingerprint, params, created_at) "
                    "VALUES (:fp, :params, :now) ON CONFLICT (fingerprint) DO NOTHING"
                ),
                {
                    "fp": fp,
                    "params": json.dumps(params, sort_keys=True, ensure_ascii=False),
                    "now": utcnow(),
                },
            )

    def record(
        self, fp: str, records: Sequence[LedgerRecord], *, model: str, prompt_version: str
    ) -> None:
        """Commit the results of one finished call at once (one transaction, however many rows).

        The same transaction marks the keys' claims `done` (final answers) or `released`
        (failures), so no peer can claim a key between the answer and the claim update.
        """
        if not records:
            return
        now = utcnow()
        records = sorted(records, key=lambda r: r.input_key)  # one lock order for every worker
        rows = [
            {
                "input_key": r.input_key,
                "fingerprint": fp,
                "status": r.status,
                "industry": r.industry,
                "confidence": r.confidence,
                "reason": r.reason,
                "raw_response": r.raw_response,
                "error": r.error,
                "attempts": r.attempts,
                "tokens_in": r.tokens_in,
                "tokens_out": r.tokens_out,
                "tokens_cached": r.tokens_cached,
                "cost_usd": r.cost_usd,
                "latency_ms": r.latency_ms,
                "model": model,
                "prompt_version": prompt_version,
                "mode": r.mode,
                "created_at": now,
                "updated_at": now,
            }
            for r in records
        ]
        done = [
            {"k": r.input_key, "fp": fp, "owner": self.owner, "now": now}
            for r in records
            if r.status in FINAL_STATUSES
        ]
        released = [
            {"k": r.input_key, "fp": fp, "owner": self.owner, "now": now}
            for r in records
            if r.status not in FINAL_STATUSES
        ]
        with self._tx() as conn:
            conn.execute(_text(_UPSERT), rows if len(rows) > 1 else rows[0])
            if done:
                conn.execute(_text(_CLAIM_DONE), done if len(done) > 1 else done[0])
            if released:
                conn.execute(_text(_CLAIM_RELEASE), released if len(released) > 1 else released[0])

    # -- claims ------------------------------------------------------------------------------
    def claim(self, fp: str, keys: Iterable[str]) -> set[str]:
        """Claim the keys this worker may pay for now; returns the ones it holds.

        Not returned: keys with a final answer, and keys under a live claim of another worker
        (their lease not expired and the claimant not a dead process of this host).
        """
        keys = sorted(set(keys))
        if not keys:
            return set()
        now, lease_until = utcnow(), _iso_in(self.lease_seconds)
        base = {"fp": fp, "owner": self.owner, "now": now, "lease_until": lease_until}
        held = set()
        with self._tx() as conn:
            claim = _text(_CLAIM)
            for k in keys:  # one statement per key: its rowcount says whether the claim took
                if conn.execute(claim, {**base, "k": k}).rowcount == 1:
                    held.add(k)
            others = [k for k in keys if k not in held]
            if others:
                holders = self._holders(conn, fp, others)
                dead = [c for c in holders if c.state == "claimed" and _owner_is_dead_here(c.owner)]
                for c in dead:
                    got = conn.execute(_text(_STEAL), {**base, "k": c.input_key, "dead": c.owner})
                    if got.rowcount == 1:
                        held.add(c.input_key)
        return held

    def renew(self, fp: str, keys: Iterable[str]) -> None:
        """Push this worker's lease on the keys forward (a long run of retries)."""
        keys = sorted(set(keys))
        if not keys:
            return
        with self._tx() as conn:
            conn.execute(
                _text(
                    "UPDATE claims SET lease_until = :lease_until, updated_at = :now "
                    "WHERE fingerprint = :fp AND owner = :owner AND state = 'claimed' "
                    "AND input_key IN :keys",
                    ("keys",),
                ),
                {
                    "fp": fp,
                    "owner": self.owner,
                    "now": utcnow(),
                    "lease_until": _iso_in(self.lease_seconds),
                    "keys": keys,
                },
            )

    def release(self, fp: str, keys: Iterable[str]) -> None:
        """Hand back claims this worker will not answer (stopped or aborted before the call)."""
        keys = sorted(set(keys))
        if not keys:
            return
        now = utcnow()
        with self._tx() as conn:
            conn.execute(
                _text(_CLAIM_RELEASE),
                [{"k": k, "fp": fp, "owner": self.owner, "now": now} for k in keys],
            )

    def claims(self, fp: str, keys: Iterable[str]) -> dict[str, Claim]:
        keys = sorted(set(keys))
        found: dict[str, Claim] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                for c in self._holders(self._conn, fp, keys[start : start + 500]):
                    found[c.input_key] = c
        return found

    @staticmethod
    def _holders(conn: Any, fp: str, keys: list[str]) -> list[Claim]:
        rows = conn.execute(
            _text(
                "SELECT input_key, state, owner, lease_until FROM claims "
                "WHERE fingerprint = :fp AND input_key IN :keys",
                ("keys",),
            ),
            {"fp": fp, "keys": keys},
        ).fetchall()
        return [Claim(*r) for r in rows]

    # -- batches (the Batch API) -------------------------------------------------------------
    def batch_begin(self, fp: str, batch_key: str, requests: Mapping[str, Sequence[str]]) -> bool:
        """Record a batch (state `pending`) and the input keys of each of its requests, before
        anything is uploaded. False, and nothing written, when one of the keys is already in an
        open batch of this fingerprint (another run put it there): the caller looks again."""
        keys = sorted({k for ks in requests.values() for k in ks})
        now = utcnow()
        with self._tx() as conn:
            for start in range(0, len(keys), 500):
                taken = conn.execute(
                    _text(_OPEN_KEYS, ("keys",)), {"fp": fp, "keys": keys[start : start + 500]}
                ).fetchall()
                if taken:
                    return False
            conn.execute(
                _text(
                    "INSERT INTO batches (batch_key, fingerprint, state, requests, created_at, "
                    "updated_at) VALUES (:b, :fp, 'pending', :n, :now, :now)"
                ),
                {"b": batch_key, "fp": fp, "n": len(requests), "now": now},
            )
            rows = [
                {"b": batch_key, "c": cid, "k": k, "fp": fp}
                for cid, ks in requests.items()
                for k in ks
            ]
            if rows:
                conn.execute(
                    _text(
                        "INSERT INTO batch_rows (batch_key, custom_id, input_key, fingerprint) "
                        "VALUES (:b, :c, :k, :fp)"
                    ),
                    rows,
                )
        return True

    _BATCH_FIELDS = (
        "state",
        "input_file_id",
        "batch_id",
        "provider_status",
        "output_file_id",
        "error_file_id",
        "output_recorded",
        "note",
    )

    def batch_update(self, batch_key: str, **fields: Any) -> None:
        """Store what the provider just handed back (a file id, a batch id, a status)."""
        bad = set(fields) - set(self._BATCH_FIELDS)
        if bad or not fields:
            raise ValueError(f"unknown batch field(s): {sorted(bad)}")
        if "state" in fields and fields["state"] not in BATCH_STATES:
            raise ValueError(f"batch state must be one of {BATCH_STATES}, got {fields['state']!r}")
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        with self._tx() as conn:
            conn.execute(
                _text(f"UPDATE batches SET {sets}, updated_at = :now WHERE batch_key = :b"),
                {**fields, "now": utcnow(), "b": batch_key},
            )

    def open_batches(self, fp: str) -> list[BatchRecord]:
        """The batches of this fingerprint not yet closed, oldest first."""
        rows = self._read(
            f"SELECT {_BATCH_SELECT} FROM batches WHERE fingerprint = :fp AND state IN "
            "('pending', 'uploaded', 'submitted') ORDER BY created_at, batch_key",
            {"fp": fp},
        )
        return [_batch(r) for r in rows]

    def batches(self) -> list[BatchRecord]:
        rows = self._read(f"SELECT {_BATCH_SELECT} FROM batches ORDER BY created_at, batch_key")
        return [_batch(r) for r in rows]

    def batch_requests(self, batch_key: str) -> dict[str, list[str]]:
        """custom_id -> the input keys that request carries."""
        out: dict[str, list[str]] = {}
        rows = self._read(
            "SELECT custom_id, input_key FROM batch_rows WHERE batch_key = :b "
            "ORDER BY custom_id, input_key",
            {"b": batch_key},
        )
        for cid, key in rows:
            out.setdefault(cid, []).append(key)
        return out

    def in_open_batches(self, fp: str) -> set[str]:
        """Input keys some open batch of this fingerprint carries (in flight at the provider)."""
        rows = self._read(
            "SELECT r.input_key FROM batch_rows r JOIN batches b ON b.batch_key = r.batch_key "
            "WHERE r.fingerprint = :fp AND b.state IN ('pending', 'uploaded', 'submitted')",
            {"fp": fp},
        )
        return {r[0] for r in rows}

    # -- reads -------------------------------------------------------------------------------
    def lookup(self, fp: str, keys: Iterable[str]) -> dict[str, StoredLabel]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, StoredLabel] = {}
        for start in range(0, len(keys), 500):
            rows = self._read(
                "SELECT input_key, status, industry, confidence, updated_at FROM labels "
                "WHERE fingerprint = :fp AND input_key IN :keys",
                {"fp": fp, "keys": keys[start : start + 500]},
                expanding=("keys",),
            )
            for row in rows:
                found[row[0]] = StoredLabel(*row)
        return found

    def count(self, *, fingerprint: str | None = None, status: str | None = None) -> int:
        where, params = _where(fingerprint=fingerprint, status=status)
        return int(self._read(f"SELECT count(*) FROM labels {where}", params)[0][0])

    def integrity_check(self) -> str:
        """SQLite's PRAGMA integrity_check; PostgreSQL checks its own pages: 'ok' if reachable."""
        if self.is_sqlite:
            return str(self._read("PRAGMA integrity_check")[0][0])
        self._read("SELECT 1")
        return "ok"

    def stats(self, current: str | None = None) -> dict[str, Any]:
        """Rows, tokens and cost by fingerprint and status (what `recsys ledger stats` prints).

        `current`: the fingerprint the configured settings produce now; adds how many inputs are
        answered under it and how many would be paid for again (answered only under others).
        """
        rows = self._read(
            "SELECT l.fingerprint, l.status, count(*), sum(l.tokens_in), sum(l.tokens_out), "
            "sum(l.cost_usd), sum(l.attempts), min(l.created_at), max(l.updated_at), "
            "max(l.prompt_version), f.params, sum(l.tokens_cached) "
            "FROM labels l LEFT JOIN fingerprints f ON f.fingerprint = l.fingerprint "
            "GROUP BY l.fingerprint, l.status, f.params ORDER BY l.fingerprint, l.status"
        )
        groups = [
            {
                "fingerprint": r[0],
                "status": r[1],
                "rows": int(r[2]),
                "tokens_in": int(r[3] or 0),
                "tokens_out": int(r[4] or 0),
                "cost_usd": round(float(r[5] or 0.0), 6),
                "attempts": int(r[6] or 0),
                "first": r[7],
                "last": r[8],
                "prompt_version": r[9],
                "params": json.loads(r[10]) if r[10] else {},
                "current": current is not None and r[0] == current,
                "tokens_cached": int(r[11] or 0),
            }
            for r in rows
        ]
        modes = {
            str(r[0]): {
                "rows": int(r[1]),
                "tokens_in": int(r[2] or 0),
                "tokens_cached": int(r[3] or 0),
                "tokens_out": int(r[4] or 0),
                "cost_usd": round(float(r[5] or 0.0), 6),
            }
            for r in self._read(
                "SELECT mode, count(*), sum(tokens_in), sum(tokens_cached), sum(tokens_out), "
                "sum(cost_usd) FROM labels GROUP BY mode ORDER BY mode"
            )
        }
        batch_states = {
            str(r[0]): int(r[1])
            for r in self._read("SELECT state, count(*) FROM batches GROUP BY state ORDER BY state")
        }
        live = self._read(
            "SELECT count(*) FROM claims WHERE state = 'claimed' AND lease_until >= :now",
            {"now": utcnow()},
        )[0][0]
        by_status = dict.fromkeys(STATUSES, 0)
        for g in groups:
            by_status[g["status"]] = by_status.get(g["status"], 0) + g["rows"]
        return {
            "path": str(self.path) if self.path is not None else self.url,
            "url": self.url,
            "rows": sum(by_status.values()),
            "by_status": by_status,
            "in_progress": int(live),
            "tokens_in": sum(g["tokens_in"] for g in groups),
            "tokens_out": sum(g["tokens_out"] for g in groups),
            "tokens_cached": sum(g["tokens_cached"] for g in groups),
            "cost_usd": round(sum(g["cost_usd"] for g in groups), 6),
            "by_mode": modes,
            "batches": batch_states,
            "groups": groups,
            "current": None
            if current is None
            else {
                "fingerprint": current,
                "answered": sum(
                    g["rows"] for g in groups if g["current"] and g["status"] in FINAL_STATUSES
                ),
                "repay_inputs": self.repay_count(current),
            },
        }

    def repay_count(self, fp: str) -> int:
        """Distinct inputs with a final answer under some other fingerprint and none under `fp`:
        what labeling them again under `fp` (after an edit of the prompt or the settings) pays for
        a second time."""
        final = "('ok', 'invalid')"
        return int(
            self._read(
                "SELECT count(DISTINCT l.input_key) FROM labels l "
                f"WHERE l.fingerprint <> :fp AND l.status IN {final} AND NOT EXISTS ("
                "SELECT 1 FROM labels c WHERE c.input_key = l.input_key AND c.fingerprint = :fp "
                f"AND c.status IN {final})",
                {"fp": fp},
            )[0][0]
        )

    def recent_latencies_ms(self, fingerprints: Sequence[str], limit: int = 5000) -> list[float]:
        """Per-call latencies of the newest answered rows of these fingerprints (a dry run's
        wall-time estimate takes their median)."""
        if not fingerprints:
            return []
        rows = self._read(
            "SELECT latency_ms FROM labels WHERE fingerprint IN :fps AND status = 'ok' "
            "AND latency_ms IS NOT NULL ORDER BY updated_at DESC LIMIT :limit",
            {"fps": list(fingerprints), "limit": int(limit)},
            expanding=("fps",),
        )
        return [float(r[0]) for r in rows]

    def fingerprint_params(self) -> dict[str, dict[str, Any]]:
        """Every registered fingerprint's parameters (model, endpoint, prompt digests, ...)."""
        rows = self._read("SELECT fingerprint, params FROM fingerprints")
        return {r[0]: json.loads(r[1]) for r in rows}

    def iter_rows(
        self, *, fingerprint: str | None = None, status: str | None = None
    ) -> Iterator[dict[str, Any]]:
        where, params = _where(fingerprint=fingerprint, status=status)
        rows = self._read(
            f"SELECT {', '.join(_COLUMNS)} FROM labels {where} ORDER BY created_at, input_key",
            params,
        )
        for row in rows:
            yield dict(zip(_COLUMNS, row, strict=True))

    def export(
        self, path: Path | str, *, fingerprint: str | None = None, status: str | None = None
    ) -> int:
        """Write the ledger (optionally filtered) to CSV or Parquet by suffix; returns the row count."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ValueError(f"export path must end in .csv or .parquet, got {path.name!r}")
        rows = list(self.iter_rows(fingerprint=fingerprint, status=status))
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            import pandas as pd

            pd.DataFrame(rows, columns=list(_COLUMNS)).to_parquet(path, index=False)
        else:
            from recsys_assets.safe_csv import neutralize

            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(_COLUMNS))
                writer.writeheader()
                writer.writerows({k: neutralize(v) for k, v in r.items()} for r in rows)
        return len(rows)

    def prune(
        self,
        *,
        fingerprint: str | None = None,
        older_than: timedelta | None = None,
        status: str | None = None,
        dry_run: bool = True,
    ) -> int:
        """Delete matching rows (or only count them when dry_run). Refuses an unfiltered prune.

        The rows' `done` claims go too, so a pruned key can be labeled again.
        """
        if fingerprint is None and older_than is None and status is None:
            raise ValueError("prune needs at least one of fingerprint, older_than, status")
        cutoff = (
            (datetime.now(UTC) - older_than).isoformat(timespec="milliseconds")
            if older_than
            else None
        )
        where, params = _where(fingerprint=fingerprint, status=status, updated_before=cutoff)
        if dry_run:
            return int(self._read(f"SELECT count(*) FROM labels {where}", params)[0][0])
        inner, _ = _where(fingerprint=fingerprint, status=status, updated_before=cutoff, alias="l")
        with self._tx() as conn:
            n = int(conn.execute(_text(f"SELECT count(*) FROM labels {where}"), params).scalar())
            if n:
                conn.execute(
                    _text(
                        "DELETE FROM claims WHERE state = 'done' AND EXISTS (SELECT 1 FROM labels l "
                        f"{inner} {'AND' if inner else 'WHERE'} l.input_key = claims.input_key "
                        "AND l.fingerprint = claims.fingerprint)"
                    ),
                    params,
                )
                conn.execute(_text(f"DELETE FROM labels {where}"), params)
        return n


_OPEN_KEYS = (
    "SELECT r.input_key FROM batch_rows r JOIN batches b ON b.batch_key = r.batch_key "
    "WHERE r.fingerprint = :fp AND r.input_key IN :keys "
    "AND b.state IN ('pending', 'uploaded', 'submitted') LIMIT 1"
)
_BATCH_SELECT = (
    "batch_key, fingerprint, state, requests, input_file_id, batch_id, provider_status, "
    "output_file_id, error_file_id, output_recorded, note, created_at"
)


def _batch(row: Any) -> BatchRecord:
    values = list(row)
    values[9] = bool(values[9])
    return BatchRecord(*values)


_STATEMENTS: dict[tuple[str, tuple[str, ...]], Any] = {}


def _text(sql: str, expanding: Sequence[str] = ()):
    """A parameterized statement, built once (so SQLAlchemy's compiled cache applies)."""
    key = (sql, tuple(expanding))
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        from sqlalchemy import bindparam, text

        stmt = text(sql)
        if expanding:
            stmt = stmt.bindparams(*(bindparam(name, expanding=True) for name in expanding))
        _STATEMENTS[key] = stmt
    return stmt


def _where(
    *,
    fingerprint: str | None = None,
    status: str | None = None,
    updated_before: str | None = None,
    alias: str | None = None,
) -> tuple[str, dict[str, Any]]:
    col = f"{alias}." if alias else ""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if fingerprint is not None:
        clauses.append(f"{col}fingerprint = :w_fp")
        params["w_fp"] = fingerprint
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        clauses.append(f"{col}status = :w_status")
        params["w_status"] = status
    if updated_before is not None:
        clauses.append(f"{col}updated_at < :w_before")
        params["w_before"] = updated_before
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
