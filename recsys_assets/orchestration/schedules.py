"""The rebuild schedule, built from the settings (RECSYS_REBUILD_CRON, RECSYS_REBUILD_TIMEZONE)."""

import dagster as dg

from recsys_assets.config import DEFAULT_REBUILD_CRON as DEFAULT_CRON
from recsys_assets.config import DEFAULT_REBUILD_TIMEZONE as DEFAULT_TIMEZONE
from recsys_assets.config import Settings
from recsys_assets.orchestration.jobs import LAUNCHED_BY_TAG, rebuild_job

__all__ = ["DEFAULT_CRON", "DEFAULT_TIMEZONE", "build_rebuild_schedule", "build_schedules"]


def build_rebuild_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The scheduled full rebuild at settings.ranking.rebuild_cron (RECSYS_REBUILD_CRON)."""
    return dg.ScheduleDefinition(
        name="rebuild_schedule",
        job=rebuild_job,
        cron_schedule=settings.ranking.rebuild_cron,
        execution_timezone=settings.ranking.rebuild_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={LAUNCHED_BY_TAG: "schedule"},
        description="Scheduled full rebuild (RECSYS_REBUILD_CRON, RECSYS_REBUILD_TIMEZONE).",
    )


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    return [build_rebuild_schedule(settings)]
