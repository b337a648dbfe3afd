"""Schedules and sensors evaluated the way the daemon evaluates them."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.orchestration.resources import RecsysConfig
from recsys_assets.orchestration.sensors import new_restaurants_sensor


def test_rebuild_schedule_defaults_to_monday_0500_seoul(monkeypatch):
    monkeypatch.delenv("RECSYS_REBUILD_CRON", raising=False)
    monkeypatch.delenv("RECSYS_REBUILD_TIMEZONE", raising=False)
    rebuild_schedule = build_defs(load_settings()).resolve_schedule_def("rebuild_schedule")
    assert rebuild_schedule.cron_schedule == "0 5 * * 1"
    assert rebuild_schedule.execution_timezone == "Asia/Seoul"
    assert rebuild_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=None)
    [request] = rebuild_schedule.evaluate_tick(context).run_requests
    assert request.job_name in (None, "rebuild_job")
    assert request.tags["recsys/launched_by"] == "schedule"
    assert build_defs().resolve_job_def("rebuild_job") is not None


def test_schedule_cron_is_configurable(monkeypatch):
    monkeypatch.setenv("RECSYS_REBUILD_CRON", "0 5 1 * *")
    monkeypatch.setenv("RECSYS_REBUILD_TIMEZONE", "UTC")
    schedule = build_defs(load_settings()).resolve_schedule_def("rebuild_schedule")
    assert schedule.cron_schedule == "0 5 1 * *"
    assert schedule.execution_timezone == "UTC"


def test_no_job_needs_an_upstream_asset_it_cannot_materialize():
    """The UI's "Materialize all" asks "Are you sure?" when an upstream asset outside the job was
    never materialized. rebuild_job has none; labeling_job only `products`, the shard backfill only
    `restaurants`, both of which every rebuild materializes; no job needs the shard partitions."""
    defs = build_defs()
    graph = defs.resolve_asset_graph()
    outside = {}
    for job in ("rebuild_job", "labeling_job", "labeling_shards_job"):
        keys = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        parents = {p for k in keys for p in graph.get(k).parent_keys} - keys
        outside[job] = {k.to_user_string() for k in parents}
    assert outside == {
        "rebuild_job": set(),
        "labeling_job": {"products"},
        "labeling_shards_job": {"restaurants"},
    }
    rebuild = defs.resolve_job_def("rebuild_job")
    assert all(graph.get(k).partitions_def is None for k in rebuild.asset_layer.selected_asset_keys)


def test_labeling_job_selects_the_labeling_path_only():
    defs = build_defs()
    job = defs.resolve_job_def("labeling_job")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert {
        "restaurants",
        "restaurant_industry",
        "industry_top_products",
        "recommendations",
    } <= keys
    assert "products" not in keys  # the catalog is not re-ingested for new restaurants


def test_sensor_watches_then_runs_on_change(recsys_home, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    recsys = RecsysConfig(home=str(recsys_home), data_dir=str(data))  # as the UI's config sets it
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"recsys": recsys}
        )
        result = new_restaurants_sensor.evaluate_tick(context)
        return result, context.cursor

    result, cursor = tick(None)
    assert not result.run_requests and "no restaurants file" in result.skip_message

    (data / "restaurants.csv").write_text(
        "restaurant_id,name,menu,signup_date\nR1,a,b,2026-01-01\n"
    )
    result, cursor = tick(None)
    assert not result.run_requests and cursor  # first sight: start watching
    result, same = tick(cursor)
    assert not result.run_requests and same == cursor

    (data / "restaurants.csv").write_text(
        "restaurant_id,name,menu,signup_date\nR1,a,b,2026-01-01\nR2,c,d,2026-02-01\n"
    )
    result, new_cursor = tick(cursor)
    [request] = result.run_requests
    assert new_cursor != cursor and request.run_key == f"restaurants-{new_cursor}"
    assert request.tags["recsys/launched_by"] == "sensor"


def test_sensor_skips_without_a_data_dir(recsys_home):
    """Sample data changes only on rebuild: with no data folder configured there is nothing to
    watch (recsys_home unsets RECSYS_DATA_DIR)."""
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"recsys": RecsysConfig(home=str(recsys_home))},
    )
    result = new_restaurants_sensor.evaluate_tick(context)
    assert not result.run_requests and "RECSYS_DATA_DIR is not set" in result.skip_message
    assert context.cursor is None


def test_data_errors_fail_fast_without_retries(recsys_home):
    """restaurant_industry has an LLM RetryPolicy, but a missing table is not worth a retry."""
    from recsys_assets.config import load_settings

    defs = build_defs(load_settings())
    result = defs.resolve_job_def("rebuild_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey("restaurant_industry")],
        raise_on_error=False,
    )
    assert not result.success
    types = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in types and types.count("STEP_FAILURE") == 1
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "not retried" in failure.event_specific_data.error.message


def test_transient_errors_are_retried(recsys_home, monkeypatch):
    """A locked or unreachable store is retried by the policy (shortened here)."""
    import duckdb

    from recsys_assets.orchestration import retries

    calls = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))
    @retries.fail_fast_unless()
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise duckdb.IOException("Could not set lock on file: Conflicting lock is held")
        return 1

    result = dg.materialize([flaky], instance=dg.DagsterInstance.ephemeral())
    assert result.success and len(calls) == 3


def test_lazily_named_transient_errors_are_retried_and_others_fail_fast(recsys_home):
    """An exception type named through a callable (as the MLflow assets do, so loading the
    definitions does not import mlflow) is retried; any other error still fails at once."""
    from recsys_assets.orchestration import retries

    class StoreBusy(Exception):
        pass

    calls: list[str] = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))
    @retries.fail_fast_unless(lambda: (StoreBusy,))
    def flaky():
        calls.append("flaky")
        if calls.count("flaky") < 3:
            raise StoreBusy("the registry is locked")
        return 1

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))
    @retries.fail_fast_unless(lambda: (StoreBusy,))
    def broken():
        calls.append("broken")
        raise KeyError("no such column")

    assert dg.materialize([flaky], instance=dg.DagsterInstance.ephemeral()).success
    result = dg.materialize([broken], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    assert calls == ["flaky"] * 3 + ["broken"]


def test_loading_the_definitions_imports_no_mlflow_lightgbm_or_matplotlib():
    """Every process that only loads the definitions (webserver, daemon, code servers, each run
    worker, `recsys materialize`) would pay their import time; the assets import them when run."""
    code = (
        "import sys, recsys_assets.definitions;"
        "print(' '.join(m for m in ('mlflow', 'lightgbm', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
