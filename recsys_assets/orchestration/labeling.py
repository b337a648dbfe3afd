"""The `restaurant_industry` asset: every restaurant labeled with one taxonomy industry.

The warehouse connection is closed while the labeler runs, so a long (and paid) LLM run never
holds the DuckDB write lock; the checkpoint ledger, not Dagster, makes reruns free.
"""


import dagster as dg

from recsys_assets import taxonomy
from recsys_assets.orchestration.metadata import distribution, preview, row_count
from recsys_assets.orchestration.resources import RecsysConfig, WarehouseResource
from recsys_assets.warehouse.tables import transaction

GROUP = "labeling"

# Transient LLM trouble (rate limits, a flaky gateway) deserves another try a little later;
# the ledger makes the retry pay only for rows that did not finish.
# Why a labeling run may stop early; only a tripped circuit breaker is worth retrying later.
TRANSIENT_ABORTS = {"circuit_open"}

LLM_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "openai", "python"},
    owners=["team:recsys"],
    deps=["restaurants"],
    retry_policy=LLM_RETRY_POLICY,
    pool="llm",
    description="One industry per restaurant (offline lexicon, LLM or cascade), checkpointed in the ledger.",
)
def restaurant_industry(
    context: dg.AssetExecutionContext, recsys: RecsysConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    from recsys_assets.labeling.service import LabelingAborted, label_frame

    settings = recsys.settings()
    with warehouse.get_connection() as con:
        frame = con.execute(
            "SELECT restaurant_id, name, menu, description FROM restaurants ORDER BY restaurant_id"
        ).df()
    try:
        labels, report = label_frame(frame, settings=settings, progress=False)
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
    columns = ["restaurant_id", "industry", "confidence", "source", "labeled_at", "flagged"]
    with warehouse.get_connection() as con:
        con.register("labels_df", labels[columns])
        with transaction(con):
            con.execute(
                "CREATE OR REPLACE TABLE restaurant_industry AS "
                "SELECT restaurant_id, industry, CAST(confidence AS DOUBLE) AS confidence, source, "
                "CAST(labeled_at AS TIMESTAMP) AS labeled_at, CAST(flagged AS BOOLEAN) AS flagged "
                "FROM labels_df ORDER BY restaurant_id"
            )
        con.unregister("labels_df")
        total = row_count(con, "restaurant_industry")
        sample = preview(con, "restaurant_industry", "restaurant_id", n=5)
    context.log.info(f"labeled {total} restaurants with {report.labeler}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "label_distribution": distribution(report.label_distribution),
            "preview": sample,
            **report.as_metadata(),
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
        passed=not bad, metadata={"unknown_labels": dg.MetadataValue.json({str(k): v for k, v in bad})}
    )


@dg.asset_check(asset=restaurant_industry, description="Every ingested restaurant has exactly one label.")
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


assets = [restaurant_industry]
asset_checks = [labels_within_taxonomy, every_restaurant_labeled]
