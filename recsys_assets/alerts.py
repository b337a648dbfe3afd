"""Durable alerts: every failure recorded under RECSYS_HOME, optionally posted to a webhook.

Two kinds, because they call for different responses (see the batch-training seed article):
`system_failure` (a step crashed: look at logs, servers, storage, then re-execute from failure) and
`model_quality` (the model is worse than the service needs: data analysis or tuning, not a rerun).
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from recsys_assets.redact import scrub

SYSTEM_FAILURE = "system_failure"
MODEL_QUALITY = "model_quality"
KINDS = (SYSTEM_FAILURE, MODEL_QUALITY)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    run_id TEXT,
    job_name TEXT,
    step_key TEXT,
    error_class TEXT,
    message TEXT NOT NULL,
    remedy TEXT,
    posted INTEGER NOT NULL DEFAULT 0,
    post_error TEXT
);
CREATE INDEX IF NOT EXISTS alerts_by_run ON alerts(run_id, kind);
"""


@dataclass(frozen=True)
class Alert:
    kind: str
    message: str
    run_id: str | None = None
    job_name: str | None = None
    step_key: str | None = None
    error_class: str | None = None
    remedy: str | None = None

    def text(self) -> str:
        """The human message: what failed, where, and how to recover."""
        title = "Model quality alert" if self.kind == MODEL_QUALITY else "Pipeline failure"
        where = ", ".join(
            f"{k}={v}"
            for k, v in (("job", self.job_name), ("step", self.step_key), ("run", self.run_id))
            if v
        )
        parts = [f"[recsys] {title}: {where}" if where else f"[recsys] {title}"]
        parts.append(f"{self.error_class}: {self.message}" if self.error_class else self.message)
        if self.remedy:
            parts.append(self.remedy)
        return "\n".join(parts)


class AlertStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def record(self, alert: Alert, webhook_url: str | None = None, timeout: float = 10.0) -> int:
        """Store the alert first (it must survive a dead webhook), then post it if configured.

        One alert per (kind, run): a failed run may be seen by the CLI that ran it, by the
        daemon's failure sensor and by the crash check; whoever records it first posts it, the
        others get the existing alert's id and post nothing.
        """
        if alert.kind not in KINDS:
            raise ValueError(f"unknown alert kind {alert.kind!r}")
        clean = Alert(
            **{k: scrub(v) if isinstance(v, str) else v for k, v in asdict(alert).items()}
        )
        alert_id, new = self._insert_once(clean)
        if webhook_url and new:
            error = post_webhook(webhook_url, clean, timeout=timeout)
            with self._connect() as con:
                con.execute(
                    "UPDATE alerts SET posted = ?, post_error = ? WHERE id = ?",
                    (0 if error else 1, error, alert_id),
                )
        return alert_id

    def _insert_once(self, alert: Alert) -> tuple[int, bool]:
        """(id, inserted): check and insert in one write transaction, so two processes racing on
        the same run cannot both insert."""
        con = self._connect()
        try:
            con.isolation_level = None  # explicit transactions below
            con.execute("BEGIN IMMEDIATE")
            if alert.run_id:
                row = con.execute(
                    "SELECT id FROM alerts WHERE kind = ? AND run_id = ? ORDER BY id LIMIT 1",
                    (alert.kind, alert.run_id),
                ).fetchone()
                if row:
                    con.execute("COMMIT")
                    return int(row[0]), False
            cur = con.execute(
                "INSERT INTO alerts(kind, created_at, run_id, job_name, step_key, error_class, message, remedy)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.kind,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                    alert.run_id,
                    alert.job_name,
                    alert.step_key,
                    alert.error_class,
                    alert.message,
                    alert.remedy,
                ),
            )
            con.execute("COMMIT")
            if cur.lastrowid is None:  # sqlite3 sets it after every INSERT
                raise sqlite3.DatabaseError("INSERT INTO alerts returned no row id")
            return cur.lastrowid, True
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def recent(self, limit: int = 20, kind: str | None = None) -> list[dict]:
        sql = "SELECT * FROM alerts"
        params: list = []
        if kind:
            sql += " WHERE kind = ?"
            params.append(kind)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, params).fetchall()]


def post_webhook(url: str, alert: Alert, timeout: float = 10.0) -> str | None:
    """POST a Slack-compatible payload ({"text": ...}); return an error string instead of raising."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):  # urllib would also open file:// and ftp:// URLs
        return f"webhook URL must start with http:// or https://, got scheme {scheme!r}"
    body = json.dumps({"text": alert.text(), "kind": alert.kind, "run_id": alert.run_id}).encode()
    request = urllib.request.Request(  # noqa: S310 (http(s) only)
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            if response.status >= 300:
                return f"webhook answered HTTP {response.status}"
    except Exception as exc:  # noqa: BLE001 (the alert is already stored; report, never raise)
        return scrub(f"{type(exc).__name__}: {exc}")
    return None


def alert_store(home: Path) -> AlertStore:
    return AlertStore(Path(home) / "alerts.sqlite")
