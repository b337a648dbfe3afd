"""Shard partitions of the labeling asset: concurrent, idempotent, assembled without relabeling."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dagster as dg
import duckdb

from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.sample_data import generate_sample
from recsys_assets.warehouse.labels import N_SHARDS

MATERIALIZE_SHARD = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from recsys_assets.config import load_settings
    from recsys_assets.definitions import build_defs

    defs = build_defs(load_settings())
    job = defs.resolve_job_def("labeling_shards_job")
    result = job.execute_in_process(partition_key=sys.argv[1], instance=dg.DagsterInstance.ephemeral())
    sys.exit(0 if result.success else 1)
    """
)


def _materialize(defs, *keys):
    job = defs.resolve_job_def("rebuild_job")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=[dg.AssetKey(k) for k in keys]
    )
    assert result.success
    return result


def _metadata(result, asset):
    [mat] = list(result.asset_materializations_for_node(asset))
    return {k: v.value for k, v in mat.metadata.items()}


def test_shards_run_concurrently_then_assemble(recsys_home, tmp_path, monkeypatch):
    data = tmp_path / "data"
    generate_sample(data, n_restaurants=400, seed=3, fmt="csv")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(data))
    settings = load_settings()
    defs = build_defs(settings)
    _materialize(defs, "restaurants")

    # Every shard in its own process at once: they contend for the DuckDB file and must all land.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MATERIALIZE_SHARD, str(k)], stderr=subprocess.PIPE, text=True
        )
        for k in range(N_SHARDS)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    # Idempotent: a shard materialized again replaces its rows.
    rerun = subprocess.run(
        [sys.executable, "-c", MATERIALIZE_SHARD, "3"], capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        shard_rows, distinct, shards = con.execute(
            "SELECT count(*), count(DISTINCT restaurant_id), count(DISTINCT shard) FROM restaurant_industry_shards"
        ).fetchall()[0]
    finally:
        con.close()
    assert shard_rows == distinct == 400 and shards == N_SHARDS

    result = _materialize(defs, "restaurant_industry")
    meta = _metadata(result, "restaurant_industry")
    assert meta["reused_from_shards"] == 400 and meta["labeled_here"] == 0

    # A changed menu makes that restaurant's shard label stale: only it is labeled again.
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute(
            "UPDATE restaurants SET menu = '짜장면|짬뽕|탕수육' WHERE restaurant_id = 'R000007'"
        )
    finally:
        con.close()
    result = _materialize(defs, "restaurant_industry")
    meta = _metadata(result, "restaurant_industry")
    assert meta["reused_from_shards"] == 399 and meta["labeled_here"] == 1
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        assert con.execute(
            "SELECT industry FROM restaurant_industry WHERE restaurant_id = 'R000007'"
        ).fetchall() == [("chinese",)]
        assert con.execute("SELECT count(*) FROM restaurant_industry").fetchall()[0][0] == 400
    finally:
        con.close()
