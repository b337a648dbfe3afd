"""Operations: the rebuild job and its schedule, the new-restaurants sensor, failure alerts.

The batch-training pattern (shared/seeds): retrain on a schedule, retry or tell an operator when
it fails, and record where it failed so someone can troubleshoot and re-execute from failure.
"""


import hashlib

import dagster as dg

from recsys_assets.alerts import alert_store
from recsys_assets.config import DEFAULT_REBUILD_CRON as DEFAULT_CRON
from recsys_assets.config import DEFAULT_REBUILD_TIMEZONE as DEFAULT_TIMEZONE
from recsys_assets.config import Settings, load_settings
from recsys_assets.orchestration.failures import failed_run_alert

# Shard partitions are for parallel backfills (labeling_shards_job); a rebuild labels in one step.
_SHARDS = dg.AssetSelection.assets("restaurant_industry_shard")

# Steps run in the run's own process: the warehouse admits one writer, so separate step
# processes would only queue on its lock and pay Python start-up for every step.
rebuild_job = dg.define_asset_job(
    "rebuild_job",
    executor_def=dg.in_process_executor,
    selection=dg.AssetSelection.all() - _SHARDS,
    description="Rebuild every asset: ingest, labeling, warehouse tables, ranking.",
)

# New or changed restaurants: ingest them, label them, and refresh only what depends on them.
labeling_job = dg.define_asset_job(
    "labeling_job",
    executor_def=dg.in_process_executor,
    selection=dg.AssetSelection.assets("restaurants").downstream() - _SHARDS,
    description="Ingest restaurants, label new or changed ones (the ledger skips the rest) and "
    "rebuild what depends on the labels.",
)

labeling_shards_job = dg.define_asset_job(
    "labeling_shards_job",
    selection=_SHARDS,
    description="Label the restaurants shard by shard: backfill all partitions to run them in "
    "parallel, then materialize restaurant_industry to assemble them.",
)


def build_rebuild_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The scheduled full rebuild at settings.ranking.rebuild_cron (RECSYS_REBUILD_CRON)."""
    return dg.ScheduleDefinition(
        name="rebuild_schedule",
        job=rebuild_job,
        cron_schedule=settings.ranking.rebuild_cron,
        execution_timezone=settings.ranking.rebuild_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Scheduled full rebuild (RECSYS_REBUILD_CRON, RECSYS_REBUILD_TIMEZONE).",
    )


def restaurants_fingerprint(data_dir) -> str | None:
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
def new_restaurants_sensor(context: dg.SensorEvaluationContext):
    settings = load_settings()
    if settings.data_dir is None:
        return dg.SkipReason("RECSYS_DATA_DIR is not set: sample data only changes on rebuild")
    fingerprint = restaurants_fingerprint(settings.data_dir)
    if fingerprint is None:
        return dg.SkipReason(f"no restaurants file in {settings.data_dir}")
    if context.cursor is None:
        # The first tick only starts watching: what is already there is the initial load, which
        # the scheduled or a manual rebuild covers.
        context.update_cursor(fingerprint)
        return dg.SkipReason(f"watching {settings.data_dir} (restaurants fingerprint {fingerprint})")
    if fingerprint == context.cursor:
        return dg.SkipReason("restaurants file unchanged")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=f"restaurants-{fingerprint}", tags={"recsys/trigger": "data_change"})


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
def failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    settings = load_settings()
    run = context.dagster_run
    log = settings.logs_dir / f"{run.run_id}.log"
    alert = failed_run_alert(context.instance, run, log_path=str(log) if log.exists() else None)
    store = alert_store(settings.home)
    store.record(alert, webhook_url=settings.alerts.webhook_url_value)
    context.log.info(f"recorded alert for run {alert.run_id} ({alert.step_key})")


jobs = [rebuild_job, labeling_job, labeling_shards_job]


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    return [build_rebuild_schedule(settings)]


sensors = [new_restaurants_sensor, failure_alert_sensor]
