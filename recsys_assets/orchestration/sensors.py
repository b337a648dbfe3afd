"""Sensors: new or changed restaurants trigger labeling; every failed run is alerted.

Alert formatting lives in orchestration/failures.py and the store in recsys_assets/alerts.py.
The sensors take their settings and the alert store as resources (the ones `build_defs` binds),
so a test evaluates them with substituted ones: `dg.build_sensor_context(resources=...)`.
"""

import hashlib
from pathlib import Path

import dagster as dg

from recsys_assets.orchestration.failures import failed_run_alert
from recsys_assets.orchestration.jobs import LAUNCHED_BY_TAG, labeling_job
from recsys_assets.orchestration.resources import AlertsResource, RecsysConfig


def restaurants_fingerprint(data_dir: Path) -> str | None:
    """Content hash of the restaurants file(s); None when the folder has none."""
    digest = hashlib.sha256()
    found = False
    for path in sorted(data_dir.glob("restaurants.*")):
        found = True
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16] if found else None


@dg.sensor(
    job=labeling_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Labels new or changed restaurants when the RECSYS_DATA_DIR restaurants file changes.",
)
def new_restaurants_sensor(
    context: dg.SensorEvaluationContext, recsys: RecsysConfig
) -> dg.RunRequest | dg.SkipReason:
    settings = recsys.settings()
    if settings.data_dir is None:
        return dg.SkipReason("RECSYS_DATA_DIR is not set: sample data only changes on rebuild")
    fingerprint = restaurants_fingerprint(settings.data_dir)
    if fingerprint is None:
        return dg.SkipReason(f"no restaurants file in {settings.data_dir}")
    if context.cursor is None:
        # The first tick only starts watching: what is already there is the initial load, which
        # the scheduled or a manual rebuild covers.
        context.update_cursor(fingerprint)
        return dg.SkipReason(
            f"watching {settings.data_dir} (restaurants fingerprint {fingerprint})"
        )
    if fingerprint == context.cursor:
        return dg.SkipReason("restaurants file unchanged")
    context.update_cursor(fingerprint)
    return dg.RunRequest(
        run_key=f"restaurants-{fingerprint}",
        tags={"recsys/trigger": "data_change", LAUNCHED_BY_TAG: "sensor"},
    )


@dg.run_failure_sensor(
    name="failure_alert_sensor",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Runs of the `recsys` CLI execute in process and carry no code-location origin; without this
    # the sensor would skip them. The CLI records its own runs' alerts too (no daemon needed);
    # the alert store keeps one alert per run.
    monitor_all_code_locations=True,
    description="Records every failed run in the alerts table and posts it to RECSYS_ALERT_WEBHOOK.",
)
def failure_alert_sensor(
    context: dg.RunFailureSensorContext, recsys: RecsysConfig, alerts: AlertsResource
) -> None:
    run = context.dagster_run
    log = recsys.settings().logs_dir / f"{run.run_id}.log"
    alert = failed_run_alert(context.instance, run, log_path=str(log) if log.exists() else None)
    alerts.record(alert)
    context.log.info(f"recorded alert for run {alert.run_id} ({alert.step_key})")


sensors = [new_restaurants_sensor, failure_alert_sensor]
