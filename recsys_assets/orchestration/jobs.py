"""The jobs: the full rebuild, the labeling path, and the shard-by-shard labeling backfill.

The batch-training pattern (shared/seeds): retrain on a schedule, retry or tell an operator when
it fails, and record where it failed so someone can troubleshoot and re-execute from failure.
"""

import dagster as dg

# How a run was launched: `ui` (the default below: the UI, its GraphQL API, backfills), or what
# the launcher sets over it: `cli` (recsys materialize/demo), `schedule`, `sensor`.
LAUNCHED_BY_TAG = "recsys/launched_by"
_FROM_WEBSERVER = {LAUNCHED_BY_TAG: "ui"}

# Shard partitions are for parallel backfills (labeling_shards_job); a rebuild labels in one step.
# No other asset depends on them (restaurant_industry reads current shard labels when there are
# any), so the two jobs below need no partition: their "Materialize all" launches at once. (The
# UI asks first only about an upstream asset never materialized: none for rebuild_job, `products`
# for labeling_job until the first rebuild.)
_SHARDS = dg.AssetSelection.assets("restaurant_industry_shard")

# Steps run in the run's own process: the warehouse admits one writer, so separate step
# processes would only queue on its lock and pay Python start-up for every step.
rebuild_job = dg.define_asset_job(
    "rebuild_job",
    executor_def=dg.in_process_executor,
    selection=dg.AssetSelection.all() - _SHARDS,
    tags=_FROM_WEBSERVER,
    description="Rebuild every asset: ingest, labeling, warehouse tables, ranking.",
)

# New or changed restaurants: ingest them, label them, and refresh only what depends on them.
labeling_job = dg.define_asset_job(
    "labeling_job",
    executor_def=dg.in_process_executor,
    selection=dg.AssetSelection.assets("restaurants").downstream() - _SHARDS,
    tags=_FROM_WEBSERVER,
    description="Ingest restaurants, label new or changed ones (the ledger skips the rest) and "
    "rebuild what depends on the labels.",
)

# One step per run: it runs in the run worker itself (no step subprocess to start, and a killed
# worker takes its step with it). The tag is what a deployment's run queue limits (deploy/dagster.yaml:
# at most four shards call the provider at once).
SHARD_RUN_TAGS = {"recsys/run_queue": "llm-shards"}

labeling_shards_job = dg.define_asset_job(
    "labeling_shards_job",
    executor_def=dg.in_process_executor,
    selection=_SHARDS,
    tags={**_FROM_WEBSERVER, **SHARD_RUN_TAGS},
    description="Label the restaurants shard by shard: backfill all partitions to run them in "
    "parallel, then materialize restaurant_industry to assemble them.",
)


jobs = [rebuild_job, labeling_job, labeling_shards_job]
