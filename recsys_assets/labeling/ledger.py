"""The labeling ledger: a SQLite file that remembers every paid LLM answer.

It replaces the notebook's pickle checkpoint, whose failure modes motivated each choice here:

* the pickle was rewritten whole every 100 rows, so a crash lost up to 99 paid calls -> here
  every finished call is committed on its own (WAL, one small transaction, well under 1 ms);
* it resumed at a row *index*, so a changed input file resumed at the wrong row -> here the key is
  a hash of the normalized input text plus a fingerprint of what shapes the answer (model,
  endpoint, prompt version, schema, temperature, items per call), never a position;
* it was deleted on success -> here nothing is deleted unless `prune` is asked to, so an
  unchanged restaurant is never paid for twice and old prompt versions stay queryable;
* it was a pickle (unsafe to load, opaque) -> here it is a plain table any SQL tool can read.

Statuses: ``ok`` and ``invalid`` (the model answered, but not in the schema even after one re-ask)
are final; ``failed`` (transport errors, retries exhausted) is retried on the next run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

STATUSES = ("ok", "invalid", "failed")
FINAL_STATUSES = ("ok", "invalid")
SCHEMA_VERSION = 1

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
    "cost_usd",
    "latency_ms",
    "model",
    "prompt_version",
    "created_at",
    "updated_at",
)

_DDL = """
CREATE TABLE IF NOT EXISTS labels (
    input_key      TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('ok', 'invalid', 'failed')),
    industry       TEXT,
    confidence     REAL,
    reason         TEXT,
    raw_response   TEXT,
    error          TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    tokens_in      INTEGER NOT NULL DEFAULT 0,
    tokens_out     INTEGER NOT NULL DEFAULT 0,
    cost_usd       REAL NOT NULL DEFAULT 0,
    latency_ms     REAL,
    model          TEXT,
    prompt_version TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (input_key, fingerprint)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS labels_status ON labels (status);
CREATE INDEX IF NOT EXISTS labels_updated ON labels (updated_at);
CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint TEXT PRIMARY KEY,
    params      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# A final answer is never overwritten: two processes racing on one key keep the first final
# answer, and a later `failed` cannot clobber an `ok`. A `failed` row is upgraded in place.
_UPSERT = f"""
INSERT INTO labels ({", ".join(_COLUMNS)})
VALUES ({", ".join("?" for _ in _COLUMNS)})
ON CONFLICT (input_key, fingerprint) DO UPDATE SET
    status = excluded.status, industry = excluded.industry, confidence = excluded.confidence,
    reason = excluded.reason, raw_response = excluded.raw_response, error = excluded.error,
    attempts = labels.attempts + excluded.attempts,
    tokens_in = labels.tokens_in + excluded.tokens_in,
    tokens_out = labels.tokens_out + excluded.tokens_out,
    cost_usd = labels.cost_usd + excluded.cost_usd,
    latency_ms = excluded.latency_ms, model = excluded.model,
    prompt_version = excluded.prompt_version, updated_at = excluded.updated_at
WHERE labels.status = 'failed'
"""


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def normalize_text(value: object) -> str:
    """NFKC + collapsed whitespace, so cosmetic edits (full-width chars, double spaces) reuse answers."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
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


@dataclass(frozen=True)
class StoredLabel:
    input_key: str
    status: str
    industry: str | None
    confidence: float | None
    updated_at: str


class Ledger:
    """One connection shared by the engine's worker threads (writes are serialized by a lock).

    WAL lets a second process read and wait for the write lock (busy_timeout) instead of failing.
    synchronous=NORMAL: a committed transaction survives a killed process (the OS has it); only a
    power loss can drop the last few commits, which would merely be paid for again.
    """

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path), timeout=busy_timeout_ms / 1000, check_same_thread=False,
            isolation_level=None,
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(None, (s.strip() for s in _DDL.split(";"))):
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------
    def register_fingerprint(self, fp: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO fingerprints (fingerprint, params, created_at) VALUES (?,?,?)",
                (fp, json.dumps(params, sort_keys=True, ensure_ascii=False), utcnow()),
            )

    def record(
        self, fp: str, records: Sequence[LedgerRecord], *, model: str, prompt_version: str
    ) -> None:
        """Commit the results of one finished call at once (one transaction, however many rows)."""
        if not records:
            return
        now = utcnow()
        rows = [
            (
                r.input_key, fp, r.status, r.industry, r.confidence, r.reason, r.raw_response,
                r.error, r.attempts, r.tokens_in, r.tokens_out, r.cost_usd, r.latency_ms, model,
                prompt_version, now, now,
            )
            for r in records
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(_UPSERT, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- reads -------------------------------------------------------------------------------
    def lookup(self, fp: str, keys: Iterable[str]) -> dict[str, StoredLabel]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, StoredLabel] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" for _ in chunk)
                cur = self._conn.execute(
                    "SELECT input_key, status, industry, confidence, updated_at FROM labels "
                    f"WHERE fingerprint = ? AND input_key IN ({marks})",
                    (fp, *chunk),
                )
                for row in cur:
                    found[row[0]] = StoredLabel(*row)
        return found

    def count(self, *, fingerprint: str | None = None, status: str | None = None) -> int:
        where, params = _where(fingerprint=fingerprint, status=status)
        with self._lock:
            return int(self._conn.execute(f"SELECT count(*) FROM labels {where}", params).fetchone()[0])

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def stats(self) -> dict[str, Any]:
        """Rows, tokens and cost by fingerprint and status (what `recsys ledger stats` prints)."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT l.fingerprint, l.status, count(*), sum(l.tokens_in), sum(l.tokens_out), "
                "sum(l.cost_usd), sum(l.attempts), min(l.created_at), max(l.updated_at), "
                "f.params FROM labels l LEFT JOIN fingerprints f USING (fingerprint) "
                "GROUP BY l.fingerprint, l.status ORDER BY l.fingerprint, l.status"
            )
            groups = [
                {
                    "fingerprint": r[0], "status": r[1], "rows": r[2], "tokens_in": r[3] or 0,
                    "tokens_out": r[4] or 0, "cost_usd": round(r[5] or 0.0, 6),
                    "attempts": r[6] or 0, "first": r[7], "last": r[8],
                    "params": json.loads(r[9]) if r[9] else {},
                }
                for r in cur
            ]
        by_status = {s: 0 for s in STATUSES}
        for g in groups:
            by_status[g["status"]] = by_status.get(g["status"], 0) + g["rows"]
        return {
            "path": str(self.path),
            "rows": sum(by_status.values()),
            "by_status": by_status,
            "tokens_in": sum(g["tokens_in"] for g in groups),
            "tokens_out": sum(g["tokens_out"] for g in groups),
            "cost_usd": round(sum(g["cost_usd"] for g in groups), 6),
            "groups": groups,
        }

    def iter_rows(
        self, *, fingerprint: str | None = None, status: str | None = None
    ) -> Iterator[dict[str, Any]]:
        where, params = _where(fingerprint=fingerprint, status=status)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM labels {where} ORDER BY created_at, input_key",
                params,
            ).fetchall()
        for row in rows:
            yield dict(zip(_COLUMNS, row, strict=True))

    def export(
        self, path: Path | str, *, fingerprint: str | None = None, status: str | None = None
    ) -> int:
        """Write the ledger (optionally filtered) to CSV or Parquet by suffix; returns the row count."""
        path = Path(path)
        rows = list(self.iter_rows(fingerprint=fingerprint, status=status))
        suffix = path.suffix.lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            import pandas as pd

            pd.DataFrame(rows, columns=list(_COLUMNS)).to_parquet(path, index=False)
        elif suffix == ".csv":
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(_COLUMNS))
                writer.writeheader()
                writer.writerows(rows)
        else:
            raise ValueError(f"export path must end in .csv or .parquet, got {path.name!r}")
        return len(rows)

    def prune(
        self,
        *,
        fingerprint: str | None = None,
        older_than: timedelta | None = None,
        status: str | None = None,
        dry_run: bool = True,
    ) -> int:
        """Delete matching rows (or only count them when dry_run). Refuses an unfiltered prune."""
        if fingerprint is None and older_than is None and status is None:
            raise ValueError("prune needs at least one of fingerprint, older_than, status")
        cutoff = (datetime.now(UTC) - older_than).isoformat(timespec="milliseconds") if older_than else None
        where, params = _where(fingerprint=fingerprint, status=status, updated_before=cutoff)
        with self._lock:
            n = int(self._conn.execute(f"SELECT count(*) FROM labels {where}", params).fetchone()[0])
            if not dry_run and n:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.execute(f"DELETE FROM labels {where}", params)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        return n


def _where(
    *, fingerprint: str | None = None, status: str | None = None, updated_before: str | None = None
) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if fingerprint is not None:
        clauses.append("fingerprint = ?")
        params.append(fingerprint)
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        clauses.append("status = ?")
        params.append(status)
    if updated_before is not None:
        clauses.append("updated_at < ?")
        params.append(updated_before)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)
