"""A new MLflow sqlite store is created without fsync per statement, and is MLflow's own store.

Real MLflow and real sqlite files in tmp_path: the store `configure_mlflow` creates is compared
with one MLflow creates on its own, and the fsync setting of every connection is read back.
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy
from sqlalchemy.pool import QueuePool

from recsys_assets.config import load_settings
from recsys_assets.ranking import registry as reg


def _schema(path) -> tuple[dict, list]:
    """Every table, index and trigger with its definition's lines as a sorted list: MLflow itself
    writes a table's CHECK constraints in a varying order (two plain creations differ)."""
    con = sqlite3.connect(path)
    try:
        objects = {
            (kind, name): sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
            for kind, name, sql in con.execute("SELECT type, name, sql FROM sqlite_master")
        }
        revision = con.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        con.close()
    return objects, revision


def test_new_store_has_mlflows_own_schema(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("RECSYS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = load_settings()
    client = reg.configure_mlflow(settings)
    exp = client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri())
    assert client.get_experiment(exp).name == "x"  # the store works

    plain = tmp_path / "plain.db"  # MLflow alone, every statement synced
    MlflowClient(tracking_uri=f"sqlite:///{plain}").search_experiments()

    ours, theirs = _schema(settings.mlflow_db_path), _schema(plain)
    assert ours[1] == theirs[1] and len(ours[1]) == 1  # the same (latest) schema revision
    assert ours[0] == theirs[0]  # the same tables, indexes and triggers


def _synchronous(dbapi_conn) -> int:
    return dbapi_conn.execute("PRAGMA synchronous").fetchone()[0]


def test_unsynced_sqlite_covers_only_its_file_and_only_meanwhile(tmp_path):
    target, other = tmp_path / "target.db", tmp_path / "other.db"
    engines = [
        sqlalchemy.create_engine(f"sqlite:///{p}", poolclass=QueuePool) for p in (target, other)
    ]
    try:
        with engines[1].connect() as c:
            default = _synchronous(c.connection.dbapi_connection)
        assert default != 0

        with reg.unsynced_sqlite(target):
            with engines[0].connect() as c:
                pooled = c.connection.dbapi_connection
                assert _synchronous(pooled) == 0  # no fsync while the store is created
                c.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
                c.commit()
            with engines[1].connect() as c:
                assert _synchronous(c.connection.dbapi_connection) == default  # other file

        # The pooled connection is used again afterwards: its setting is back.
        with engines[0].connect() as c:
            assert c.connection.dbapi_connection is pooled
            assert _synchronous(pooled) == default
        # A connection opened afterwards is not touched either.
        extra = engines[0].raw_connection()
        try:
            assert _synchronous(extra.dbapi_connection) == default
        finally:
            extra.close()
    finally:
        for e in engines:
            e.dispose()


def test_unsynced_sqlite_restores_after_an_error(tmp_path):
    target = tmp_path / "target.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{target}", poolclass=QueuePool)
    opened = []

    def fail_while_creating() -> None:
        with reg.unsynced_sqlite(target), engine.connect() as c:
            opened.append(c.connection.dbapi_connection)
            raise RuntimeError("store creation failed")

    try:
        with pytest.raises(RuntimeError, match="store creation failed"):
            fail_while_creating()
        (pooled,) = opened
        with engine.connect() as c:
            assert c.connection.dbapi_connection is pooled
            assert _synchronous(pooled) != 0
    finally:
        engine.dispose()
