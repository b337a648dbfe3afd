"""The Dagster `Definitions`: assets, checks, resources, jobs, schedules and sensors."""

from __future__ import annotations

import dagster as dg

from recsys_assets.config import Settings, load_settings
from recsys_assets.orchestration import (
    ingest,
    jobs,
    labeling,
    overrides,
    ranking,
    schedules,
    sensors,
    warehouse,
)
from recsys_assets.orchestration.resources import default_resources

ASSET_MODULES = [ingest, labeling, overrides, warehouse, ranking]


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    """Definitions bound to `settings` (the environment when None); tests pass a tmp RECSYS_HOME."""
    settings = settings or load_settings()
    assets = [a for m in ASSET_MODULES for a in m.assets]
    checks = [c for m in ASSET_MODULES for c in m.asset_checks]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs.jobs,
        schedules=schedules.build_schedules(settings),
        sensors=sensors.sensors,
        resources=default_resources(settings),
        # Also for runs outside the jobs (the UI's selections, `dagster asset materialize`): steps
        # run in the run's process, as in jobs.py, since the warehouse admits one writer.
        executor=dg.in_process_executor,
    )


defs = build_defs()
