"""The `restaurant_industry` asset: every restaurant labeled with one taxonomy industry.

The warehouse connection is closed while the labeler runs, so a long (and paid) LLM run never
holds the DuckDB write lock; the checkpoint ledger, not Dagster, makes reruns free.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from recsys_assets import taxonomy
from recsys_assets.labeling import overrides
from recsys_assets.labeling.service import LabelingAborted
from recsys_assets.orchestration.metadata import (
    distribution,
    preview,
    row_count,
    table_definition,
    table_metadata,
    tidy,
)
from recsys_assets.orchestration.resources import (
    LedgerResource,
    LLMResource,
    RecsysConfig,
    WarehouseResource,
    run_settings,
)
from recsys_assets.orchestration.retries import backoff_policy, retry_only_on
from recsys_assets.warehouse import labels as labels_sql
from recsys_assets.warehouse.labels import N_SHARDS
from recsys_assets.warehouse.reader import IngestError

GROUP = "labeling"

# Transient LLM trouble (rate limits, a flaky gateway) deserves another try a little later;
# the ledger makes the retry pay only for rows that did not finish.
# Why a labeling run may stop early; only a tripped circuit breaker is worth retrying later.
TRANSIENT_ABORTS = {"circuit_open"}

LLM_RETRY_POLICY = backoff_policy(max_retries=3, delay=30)


class LabelingConfig(dg.Config):
    """Run config of the labeling assets."""

    mode: str | None = Field(
        default=None,
        description="online | batch: batch sends the LLM requests through the OpenAI Batch API "
        "(half price, answers within 24 h; a re-executed run resumes its batches). "
        "None: RECSYS_LLM_MODE, default online.",
    )


SHARDS = dg.StaticPartitionsDefinition([str(i) for i in range(N_SHARDS)])


def _label(context: dg.AssetExecutionContext, frame: pd.DataFrame, settings, mode: str | None):
    """Run the labeling engine; decide what Dagster should do when it stops early."""
    from recsys_assets.labeling.service import label_frame

    try:
        labels, report = label_frame(frame, settings=settings, progress=False, mode=mode)
    except ValueError as exc:  # e.g. an unknown mode: configuration, not worth a retry
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except LabelingAborted as exc:
        if exc.reason in TRANSIENT_ABORTS:
            raise  # the provider is down or throttling: the RetryPolicy tries again later
        # A bad key or an exhausted quota will not fix itself: fail fast with the reason.
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if report.interrupted or len(labels) != len(frame):
        raise dg.Failure(
            description=f"labeling stopped with {report.remaining} rows remaining; "
            "re-execute to resume (finished rows are in the ledger and cost nothing again)"
        )
    context.log.info(
        f"{report.labeler}: {report.labeled_this_run} labeled, {report.reused_from_ledger} from the ledger, "
        f"{report.llm_calls} LLM calls ({report.mode}), {report.tokens_cached} cached tokens, "
        f"~${report.estimated_cost_usd:.4f}"
    )
    return labels, report


# Report fields that only mean something when an LLM was asked, or when the cascade routed.
_LLM_FIELDS = frozenset(
    {
        "llm_calls",
        "tokens_in",
        "tokens_out",
        "tokens_cached",
        "mode",
        "estimated_cost_usd",
        "latency_p50_ms",
        "latency_p95_ms",
        "model",
        "fingerprint",
        "structured_output",
    }
)
_CASCADE_FIELDS = frozenset({"cascade_rule", "cascade_kept_offline", "offline_answered"})


def report_metadata(report) -> dict:
    """The labeling report as metadata: what applies to this labeler, nothing empty or repeated.

    The per-label counts are left to the `label_distribution` table; an offline run shows no LLM
    fields (they would all be 0 or null), and only the cascade shows its routing.
    """
    skip: set[str] = set()
    if report.labeler == "offline":
        skip |= _LLM_FIELDS
    if report.labeler != "cascade":
        skip |= _CASCADE_FIELDS
    return tidy(
        {
            k: v
            for k, v in report.as_metadata().items()
            if k not in skip and not k.startswith("labels.")
        }
    )


def _overrides(con, settings) -> pd.DataFrame:
    """The human corrections that apply now (validated; see labeling/overrides.py)."""
    try:
        return overrides.check(con, settings).valid
    except (IngestError, overrides.OverrideError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "openai", "python"},
    owners=["team:recsys"],
    deps=["restaurants"],
    partitions_def=SHARDS,
    retry_policy=LLM_RETRY_POLICY,
    metadata=table_definition(labels_sql.SHARDS_TABLE),
    description=f"Labels of one of {N_SHARDS} hash shards of the restaurants. Backfill the shards to "
    "label a large base in parallel runs; each shard is idempotent, and `restaurant_industry` "
    "assembles the current ones without labeling them again.",
)
def restaurant_industry_shard(
    context: dg.AssetExecutionContext,
    config: LabelingConfig,
    recsys: RecsysConfig,
    warehouse: WarehouseResource,
    llm: LLMResource,
    ledger: LedgerResource,
) -> dg.MaterializeResult:
    shard = int(context.partition_key)
    with retry_only_on(LabelingAborted):
        settings = run_settings(recsys, llm=llm, ledger=ledger)
        with warehouse.get_connection() as con:
            inputs = labels_sql.restaurants_to_label(con, shard)
            # overridden restaurants are not worth a paid call: restaurant_industry uses the override
            inputs = inputs[
                ~overrides.overridden_mask(inputs["restaurant_id"], _overrides(con, settings))
            ]
        labels, report = _label(context, inputs.reset_index(drop=True), settings, config.mode)
        with warehouse.get_connection() as con:
            rows = labels_sql.write_shard(con, shard, inputs, labels)
            schema = table_metadata(con, labels_sql.SHARDS_TABLE)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "shard": shard,
            "label_distribution": distribution(report.label_distribution),
            **report_metadata(report),
            **schema,
        }
    )


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "openai", "python"},
    owners=["team:recsys"],
    # Not a dep on restaurant_industry_shard: the shards are an optional parallel backfill,
    # read here from their table when present. As a dep, every rebuild would need all shard
    # partitions first (the UI's "Materialize all" warned that they were not materialized).
    deps=["restaurants", "label_overrides"],
    retry_policy=LLM_RETRY_POLICY,
    pool="llm",
    metadata=table_definition("restaurant_industry"),
    description="One industry per restaurant (offline lexicon, LLM or cascade), checkpointed in the "
    "ledger; labels of `restaurant_industry_shard` backfills that are still current are reused, "
    "the rest is labeled here.",
)
def restaurant_industry(
    context: dg.AssetExecutionContext,
    config: LabelingConfig,
    recsys: RecsysConfig,
    warehouse: WarehouseResource,
    llm: LLMResource,
    ledger: LedgerResource,
) -> dg.MaterializeResult:
    settings = run_settings(recsys, llm=llm, ledger=ledger)
    with retry_only_on(LabelingAborted):
        with warehouse.get_connection() as con:
            inputs = labels_sql.restaurants_to_label(con)
            from_shards = labels_sql.current_shard_labels(con)
            fixed = _overrides(con, settings)
        todo = inputs[~inputs["restaurant_id"].isin(from_shards["restaurant_id"])]
        todo = todo[~overrides.overridden_mask(todo["restaurant_id"], fixed)]
        parts = [from_shards] if len(from_shards) else []
        report = None
        if len(todo):
            labels, report = _label(context, todo.reset_index(drop=True), settings, config.mode)
            parts.append(labels)
        combined = pd.concat(parts, ignore_index=True) if parts else from_shards
        combined = overrides.apply(combined, fixed)  # a human correction wins over every labeler
        with warehouse.get_connection() as con:
            labels_sql.write_restaurant_industry(con, combined)
            total = row_count(con, "restaurant_industry")
            sample = preview(con, "restaurant_industry", "restaurant_id", n=5)
            schema = table_metadata(con, "restaurant_industry")
    counts = combined["industry"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "reused_from_shards": len(from_shards),
            "labeled_here": len(todo),
            "overridden": len(fixed),
            "label_distribution": distribution({str(k): int(v) for k, v in counts.items()}),
            "preview": sample,
            **(
                report_metadata(report)
                if report is not None
                else {"labeler": settings.resolved_labeler()}
            ),
            **schema,
        }
    )


@dg.asset_check(asset=restaurant_industry, description="Every label is a taxonomy code.")
def labels_within_taxonomy(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        bad = con.execute(
            "SELECT industry, count(*) FROM restaurant_industry "
            "WHERE industry IS NULL OR NOT list_contains(?, industry) GROUP BY industry",
            [list(taxonomy.INDUSTRY_CODES)],
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={"unknown_labels": dg.MetadataValue.json({str(k): v for k, v in bad})},
    )


@dg.asset_check(
    asset=restaurant_industry, description="Every ingested restaurant has exactly one label."
)
def every_restaurant_labeled(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        missing, duplicated = con.execute(
            """
            SELECT
              (SELECT count(*) FROM restaurants r ANTI JOIN restaurant_industry l USING (restaurant_id)),
              (SELECT count(*) FROM (SELECT restaurant_id FROM restaurant_industry
                                     GROUP BY restaurant_id HAVING count(*) > 1))
            """
        ).fetchall()[0]
    return dg.AssetCheckResult(
        passed=missing == 0 and duplicated == 0,
        metadata={"unlabeled": int(missing), "labeled_twice": int(duplicated)},
    )


assets = [restaurant_industry_shard, restaurant_industry]
asset_checks = [labels_within_taxonomy, every_restaurant_labeled]
