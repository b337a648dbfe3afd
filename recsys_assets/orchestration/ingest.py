"""Ingest assets: validated `restaurants`, `products`, `orders`; bad rows go to `rejected_rows`."""

from pathlib import Path

import dagster as dg
from duckdb import DuckDBPyConnection

from recsys_assets.config import Settings
from recsys_assets.orchestration.metadata import (
    distribution,
    preview,
    rounded,
    row_count,
    table_definition,
    table_metadata,
    tidy,
)
from recsys_assets.orchestration.resources import RecsysConfig, WarehouseResource
from recsys_assets.sources import ensure_source_dir
from recsys_assets.text import count
from recsys_assets.warehouse import ingest

GROUP = "ingest"
# Above this share of rejected rows the input is probably broken, not just dirty.
MAX_REJECTED_SHARE = 0.05

# Each table's key: checked unique, and the preview's order.
_KEYS = {
    "restaurants": "restaurant_id",
    "products": "product_id",
    "orders": "order_id, product_id",
}


def _load(
    name: str, con: DuckDBPyConnection, source: Path, settings: Settings
) -> ingest.IngestResult:
    """Each file's ingester with the limits that apply to it (only orders have a quantity)."""
    if name == "orders":
        return ingest.ingest_orders(
            con,
            source,
            max_quantity=settings.max_quantity,
            max_shrink=settings.max_shrink,
            allow_shrink=settings.allow_shrink,
        )
    fn = ingest.ingest_restaurants if name == "restaurants" else ingest.ingest_products
    return fn(con, source, max_shrink=settings.max_shrink, allow_shrink=settings.allow_shrink)


def _ingest(
    name: str, context: dg.AssetExecutionContext, recsys: RecsysConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    settings = recsys.settings()
    source = ingest.find_source(ensure_source_dir(settings), name)
    with warehouse.get_connection() as con:
        try:
            result = _load(name, con, source, settings)
        except ingest.ShrinkRefused as exc:
            # Fail the step before anything is replaced: downstream assets do not run either.
            raise dg.Failure(
                description=str(exc),
                metadata={
                    "previous_rows": exc.previous_rows,
                    "rows_to_load": exc.new_rows,
                    "source_file": str(source),
                    "override": "RECSYS_ALLOW_SHRINK=1",
                },
                allow_retries=False,
            ) from exc
        sample = preview(con, name, _KEYS[name], n=5)
        schema = table_metadata(con, name)
    if result.rows_rejected:
        context.log.warning(
            f"{name}: {result.rows_rejected:,} of {count(result.rows_read, 'row')} rejected "
            f"({result.rejected_by_reason}); see the rejected_rows table"
        )
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "dagster/row_count": result.rows_loaded,
                "source_file": str(source),
                "rows_read": result.rows_read,
                "rows_rejected": result.rows_rejected,
                "rejected_share": result.rows_rejected / max(result.rows_read, 1),
                "rejected_by_reason": distribution(result.rejected_by_reason)
                if result.rejected_by_reason
                else dg.MetadataValue.md("none"),
                "preview": sample,
                **schema,
            }
        )
    )


def _ingest_asset(name: str, description: str, deps: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=GROUP,
        kinds={"duckdb", "python"},
        owners=["team:recsys"],
        description=description,
        deps=deps,
        pool="warehouse",
        metadata=table_definition(name),
    )
    def _asset(
        context: dg.AssetExecutionContext, recsys: RecsysConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        return _ingest(name, context, recsys, warehouse)

    return _asset


restaurants = _ingest_asset(
    "restaurants",
    "Restaurants (id, name, menu, description, region, size, sign-up date), validated at ingest.",
    [],
)
products = _ingest_asset(
    "products", "The food-supply catalog (id, name, category, unit price), validated.", []
)
orders = _ingest_asset(
    "orders",
    "Order lines, validated; unknown restaurants or products are quarantined, not dropped.",
    ["restaurants", "products"],
)


def _rejected_share_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=name,
        name="rejected_rows_below_threshold",
        description=f"Less than {MAX_REJECTED_SHARE:.0%} of the input rows were rejected.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            loaded = row_count(con, name)
            rejected = con.execute(
                "SELECT count(*) FROM rejected_rows WHERE table_name = ?", [name]
            ).fetchall()[0][0]
        share = rejected / max(loaded + rejected, 1)
        return dg.AssetCheckResult(
            passed=share < MAX_REJECTED_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rejected": int(rejected), "loaded": loaded, "share": rounded(share)},
        )

    return _check


def _unique_key_check(name: str, key: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=name, name="unique_key", description=f"({key}) is unique.")
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            dupes = con.execute(
                f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchall()[0][0]
        return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": int(dupes)})

    return _check


assets = [restaurants, products, orders]
asset_checks = [
    *(_rejected_share_check(n) for n in _KEYS),
    *(_unique_key_check(n, key) for n, key in _KEYS.items()),
]
