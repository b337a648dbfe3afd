"""`label_overrides` (human corrections, validated) and `label_review_queue` (what to check next).

Thin: the rules live in recsys_assets/labeling/overrides.py and recsys_assets/warehouse/overrides.py.
"""

import dagster as dg

from recsys_assets.labeling import overrides
from recsys_assets.orchestration.labeling import GROUP, restaurant_industry
from recsys_assets.orchestration.metadata import (
    distribution,
    preview,
    table_definition,
    table_metadata,
)
from recsys_assets.orchestration.resources import RecsysConfig, WarehouseResource
from recsys_assets.warehouse import overrides as sql
from recsys_assets.warehouse.reader import IngestError


@dg.asset(
    name=sql.TABLE,
    group_name=GROUP,
    kinds={"duckdb", "sqlite", "python"},
    owners=["team:recsys"],
    deps=["restaurants"],
    pool="warehouse",
    metadata=table_definition(sql.TABLE),
    description="Human corrections of industry labels: the label_overrides file in RECSYS_DATA_DIR "
    "and the `recsys label override` table (RECSYS_HOME/label_overrides.sqlite), checked against "
    "the taxonomy and the restaurants; bad rows are quarantined in rejected_rows with a reason. "
    "They win over every labeler in restaurant_industry.",
)
def label_overrides(
    context: dg.AssetExecutionContext, recsys: RecsysConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    settings = recsys.settings()
    with warehouse.get_connection() as con:
        try:
            checked = overrides.check(con, settings)
        except (IngestError, overrides.OverrideError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        sql.write(con, checked)
        sample = preview(con, sql.TABLE, "restaurant_id", n=5)
        schema = table_metadata(con, sql.TABLE)
    by_reason = checked.rejects["reason"].value_counts().to_dict()
    if by_reason:
        context.log.warning(
            f"label_overrides: {len(checked.rejects)} row(s) quarantined "
            f"({by_reason}); see rejected_rows WHERE table_name = 'label_overrides'"
        )
    origins = checked.valid["origin"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(checked.valid),
            "from_command": int(origins.get("command", 0)),
            "from_file": int(origins.get("file", 0)),
            "rows_rejected": len(checked.rejects),
            "rejected_by_reason": distribution({str(k): int(v) for k, v in by_reason.items()})
            if by_reason
            else dg.MetadataValue.md("none"),
            "preview": sample,
            **schema,
        }
    )


@dg.asset_check(asset=label_overrides, description="No override row was quarantined.")
def no_override_rejected(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        rows = con.execute(
            "SELECT reason, count(*) FROM rejected_rows WHERE table_name = ? GROUP BY reason",
            [sql.TABLE],
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected": dg.MetadataValue.json(dict(rows))},
    )


@dg.asset(
    name=sql.REVIEW_TABLE,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    owners=["team:recsys"],
    deps=[restaurant_industry, label_overrides],
    pool="warehouse",
    metadata=table_definition(sql.REVIEW_TABLE),
    description="The labels most worth a human look, ranked: flagged answers, then LLM labels the "
    f"offline lexicon contradicts, then confidence below {overrides.LOW_CONFIDENCE}; overridden "
    "restaurants excluded. `recsys label review -o queue.csv` writes the same list.",
)
def label_review_queue(
    context: dg.AssetExecutionContext, recsys: RecsysConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    settings = recsys.settings()
    with warehouse.get_connection() as con:
        try:
            current = overrides.check(con, settings)
        except (IngestError, overrides.OverrideError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        candidates = sql.review_candidates(con, list(current.valid["restaurant_id"]))
        queue = overrides.review_queue(candidates)
        sql.write_review_queue(con, queue)
        sample = preview(con, sql.REVIEW_TABLE, "rank", n=10)
        schema = table_metadata(con, sql.REVIEW_TABLE)
    tiers = {
        "flagged": queue["reason"].str.startswith("flagged").sum(),
        "offline_disagrees": queue["reason"].str.contains("offline says").sum(),
        "low_confidence": queue["reason"].str.contains("low confidence").sum(),
    }
    context.log.info(f"review queue: {len(queue)} of {len(candidates)} labels")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(queue),
            "candidates": len(candidates),
            "queued_by_reason": distribution({k: int(v) for k, v in tiers.items()}),
            "preview": sample,
            **schema,
        }
    )


assets = [label_overrides, label_review_queue]
asset_checks = [no_override_rejected]
