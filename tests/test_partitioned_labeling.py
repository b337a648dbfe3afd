"""Shard partitions of the labeling asset: concurrent, idempotent, assembled without relabeling."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dagster as dg
import duckdb
import pytest

from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.sample_data import generate_sample
from recsys_assets.warehouse.labels import N_SHARDS

# Every shard named on the command line in its own process, all at once: the job is loaded once,
# then one child per shard is forked, so the processes start together without each paying for
# importing Dagster (seconds of CPU apiece on 2 cores). Exit 1 when any shard failed.
MATERIALIZE_SHARDS = textwrap.dedent(
    """
    import os
    import sys
    import traceback
    import dagster as dg
    from recsys_assets.config import load_settings
    from recsys_assets.definitions import build_defs

    job = build_defs(load_settings()).resolve_job_def("labeling_shards_job")
    children = {}
    for key in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                result = job.execute_in_process(partition_key=key, instance=dg.DagsterInstance.ephemeral())
                code = 0 if result.success else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = key
    failed = []
    for pid, key in children.items():
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(key)
    print(f"shards failed: {failed}" if failed else f"shards done: {sys.argv[1:]}", file=sys.stderr)
    sys.exit(1 if failed else 0)
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


@pytest.mark.heavy
def test_shards_run_concurrently_then_assemble(recsys_home, tmp_path, monkeypatch):
    data = tmp_path / "data"
    generate_sample(data, n_restaurants=400, seed=3, fmt="csv")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(data))
    settings = load_settings()
    defs = build_defs(settings)
    _materialize(defs, "restaurants")

    # Every shard in its own process at once: they contend for the DuckDB file and must all land.
    shards = subprocess.run(
        [sys.executable, "-c", MATERIALIZE_SHARDS, *(str(k) for k in range(N_SHARDS))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shards.returncode == 0, shards.stderr[-3000:]
    # Idempotent: a shard materialized again replaces its rows.
    rerun = defs.resolve_job_def("labeling_shards_job").execute_in_process(
        partition_key="3", instance=dg.DagsterInstance.ephemeral()
    )
    assert rerun.success

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
