"""Failures are recorded durably, posted to a webhook, and never leak a key."""

from __future__ import annotations

import dagster as dg

from recsys_assets.alerts import MODEL_QUALITY, SYSTEM_FAILURE, Alert, AlertStore
from recsys_assets.orchestration.resources import AlertsResource, RecsysConfig
from recsys_assets.orchestration.sensors import failure_alert_sensor
from tests.webhook_receiver import WebhookReceiver


def test_record_and_post(tmp_path, monkeypatch):
    key = "sk-test-" + "a1b2c3d4" * 4
    monkeypatch.setenv("OPENAI_API_KEY", key)
    store = AlertStore(tmp_path / "alerts.sqlite")
    with WebhookReceiver() as hook:
        alert_id = store.record(
            Alert(
                kind=SYSTEM_FAILURE,
                message=f"auth failed for {key}",
                job_name="rebuild_job",
                step_key="restaurant_industry",
                error_class="AuthenticationError",
            ),
            webhook_url=hook.url,
        )
    [row] = store.recent()
    assert row["id"] == alert_id and row["posted"] == 1 and row["post_error"] is None
    assert key not in row["message"] and "***" in row["message"]
    [payload] = hook.payloads
    assert "restaurant_industry" in payload["text"] and key not in payload["text"]


def test_dead_webhook_still_records(tmp_path):
    store = AlertStore(tmp_path / "alerts.sqlite")
    store.record(
        Alert(kind=MODEL_QUALITY, message="ndcg below floor"), webhook_url="http://127.0.0.1:9/x"
    )
    [row] = store.recent()
    assert row["kind"] == MODEL_QUALITY and row["posted"] == 0 and row["post_error"]


def test_failure_sensor_records_failed_step(recsys_home):
    @dg.asset
    def broken_asset():
        raise RuntimeError("warehouse disk is full")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([broken_asset], instance=instance, raise_on_error=False)
    assert not result.success
    failure_event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    store_dir = recsys_home / "sensor_alerts"  # not the default: the resource is what is used
    with WebhookReceiver() as hook:
        context = dg.build_run_status_sensor_context(
            sensor_name="failure_alert_sensor",
            dagster_event=failure_event,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={
                "recsys": RecsysConfig(home=str(recsys_home)),
                "alerts": AlertsResource(store_dir=str(store_dir), webhook_url=hook.url),
            },
        ).for_run_failure()
        failure_alert_sensor(context)
    assert not (recsys_home / "alerts.sqlite").exists()
    [row] = AlertStore(store_dir / "alerts.sqlite").recent()
    assert row["run_id"] == result.run_id
    assert row["step_key"] == "broken_asset"
    assert row["error_class"] == "RuntimeError"
    assert row["message"] == "warehouse disk is full"  # the cause, without Dagster's wrapper
    # An in-process run has no code location to re-execute it from in the UI: the remedy says so
    # (the e2e test checks the UI remedy for a run launched over GraphQL).
    assert "recsys materialize" in row["remedy"] and "Re-execute" not in row["remedy"]
    assert "warehouse disk is full" in hook.payloads[0]["text"]


def test_one_alert_per_run_even_when_recorded_concurrently(tmp_path):
    """The CLI, the failure sensor and the crash check may all record the same failed run."""
    from concurrent.futures import ThreadPoolExecutor

    store = AlertStore(tmp_path / "alerts.sqlite")
    alert = Alert(kind=SYSTEM_FAILURE, message="boom", run_id="run-1", step_key="orders")
    with WebhookReceiver() as hook, ThreadPoolExecutor(8) as pool:
        ids = set(
            pool.map(lambda _: AlertStore(store.path).record(alert, webhook_url=hook.url), range(8))
        )
    assert len(ids) == 1 and len(store.recent()) == 1 and len(hook.payloads) == 1
    # Another kind for the same run, and alerts without a run, are their own alerts.
    store.record(Alert(kind=MODEL_QUALITY, message="rejected", run_id="run-1"))
    store.record(Alert(kind=SYSTEM_FAILURE, message="a"))
    store.record(Alert(kind=SYSTEM_FAILURE, message="b"))
    assert len(store.recent()) == 4


def test_the_cause_is_the_domain_error_not_its_wrappers(recsys_home):
    """An error raised `from` a library error, wrapped by retry_only_on and by Dagster: the alert
    names the domain error (it has the file), without a class-name prefix."""
    from recsys_assets.orchestration.failures import failed_run_alert
    from recsys_assets.orchestration.retries import fail_fast_unless

    class IngestError(ValueError):
        pass

    @dg.asset
    @fail_fast_unless()
    def orders():
        try:
            int("x1")
        except ValueError as exc:
            raise IngestError("/data/orders.csv: line 7: quantity 'x1' is not a number") from exc

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([orders], instance=instance, raise_on_error=False)
    alert = failed_run_alert(instance, result.dagster_run)
    assert alert.error_class == "IngestError" and alert.step_key == "orders"
    assert alert.message == "/data/orders.csv: line 7: quantity 'x1' is not a number"


def test_a_run_failed_by_the_code_server_alerts_with_its_explanation(recsys_home):
    """A killed run worker is failed by the code server with a RUN_FAILURE that carries no
    JobFailureData (the e2e kill -9 test's case): the sensor still alerts, with the explanation."""

    @dg.op
    def step():
        return 1

    @dg.job
    def killed_job():
        step()

    instance = dg.DagsterInstance.ephemeral()
    run = instance.create_run_for_job(killed_job)
    instance.report_run_failed(run, "Run execution process for x was terminated by signal 9.")
    [record] = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    assert record.event_log_entry.dagster_event.event_specific_data is None  # the case itself
    context = dg.build_run_status_sensor_context(
        sensor_name="failure_alert_sensor",
        dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id),
        resources={
            "recsys": RecsysConfig(home=str(recsys_home)),
            "alerts": AlertsResource(store_dir=str(recsys_home)),
        },
    ).for_run_failure()
    failure_alert_sensor(context)
    [row] = AlertStore(recsys_home / "alerts.sqlite").recent()
    assert row["run_id"] == run.run_id and "signal 9" in row["message"]
