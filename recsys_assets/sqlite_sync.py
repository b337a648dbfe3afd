"""How often SQLite connections of the libraries we drive (MLflow, Dagster) wait for the disk.

Both open SQLAlchemy engines on SQLite files and commit small transactions one by one; each commit
is an fsync (3-4 ms on the disks here) unless the connection says otherwise. The settings below
apply to connections opened meanwhile to the named files only, and are given back when they end.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def sqlite_synchronous(files: Iterable[Path], level: str) -> Iterator[None]:
    """SQLAlchemy connections opened meanwhile to any of `files` get `PRAGMA synchronous=level`;
    the ones still open get their previous level back when this ends (pools keep them)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    targets = {Path(f).resolve() for f in files}
    opened: list[tuple[sqlite3.Connection, int]] = []

    def on_connect(dbapi_conn, _record) -> None:
        if not isinstance(dbapi_conn, sqlite3.Connection):
            return
        main = {row[1]: row[2] for row in dbapi_conn.execute("PRAGMA database_list")}.get("main")
        if not main or Path(main).resolve() not in targets:
            return
        opened.append((dbapi_conn, dbapi_conn.execute("PRAGMA synchronous").fetchone()[0]))
        dbapi_conn.execute(f"PRAGMA synchronous = {level}")

    event.listen(Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Engine, "connect", on_connect)
        for conn, previous in opened:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed meanwhile
                conn.execute(f"PRAGMA synchronous = {int(previous)}")


@contextlib.contextmanager
def held_open(files: Iterable[Path]) -> Iterator[None]:
    """Keep one idle reader connection on each of `files` (WAL databases) meanwhile.

    A WAL database checkpoints (copies the log into the file, two fsyncs) whenever its LAST
    connection closes; Dagster's SQLite event log opens and closes a connection for every event.
    While one connection stays open the others' closes are not the last, and the log is
    checkpointed every 1,000 pages (SQLite's default) and once when this ends."""
    conns = []
    try:
        for f in files:
            conn = sqlite3.connect(str(f))
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # joins the WAL now
            conns.append(conn)
        yield
    finally:
        for conn in conns:
            conn.close()
