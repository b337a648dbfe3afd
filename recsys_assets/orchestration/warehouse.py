"""Industry-to-product assets, built in DuckDB SQL from orders and labels."""

import dagster as dg

from recsys_assets.orchestration.metadata import markdown_table, table_definition, table_metadata
from recsys_assets.orchestration.resources import WarehouseResource
from recsys_assets.warehouse import tables

GROUP = "warehouse"


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "sql"},
    owners=["team:recsys"],
    deps=["orders", "restaurant_industry", "products"],
    pool="warehouse",
    metadata=table_definition("industry_product_stats"),
    description="Per industry x product: buyers, penetration, orders, quantity, lift, recency score.",
)
def industry_product_stats(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        rows = tables.build_industry_product_stats(con)
        top_lift = con.execute(
            """
            SELECT s.industry, p.name AS product, s.buyers, round(s.penetration, 3) AS penetration,
                   round(s.lift, 2) AS lift
            FROM industry_product_stats s JOIN products p USING (product_id)
            WHERE s.buyers >= 5
            ORDER BY s.lift DESC LIMIT 10
            """
        ).df()
        industries = con.execute(
            "SELECT count(DISTINCT industry) FROM industry_product_stats"
        ).fetchall()[0][0]
        schema = table_metadata(con, "industry_product_stats")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "industries": int(industries),
            "highest_lift": markdown_table(top_lift),
            **schema,
        }
    )


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "sql"},
    owners=["team:recsys"],
    deps=[industry_product_stats],
    pool="warehouse",
    metadata=table_definition("industry_top_products"),
    description=f"The cold-start list: top {tables.TOP_K_PER_INDUSTRY} products per industry.",
)
def industry_top_products(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        rows = tables.build_industry_top_products(con)
        # One row per industry (all of them), its first three products by name: the list a new
        # restaurant of that industry would be shown, readable without a join.
        top3 = con.execute(
            """
            SELECT t.industry,
                   max(p.name) FILTER (t.rank = 1) AS "#1",
                   max(p.name) FILTER (t.rank = 2) AS "#2",
                   max(p.name) FILTER (t.rank = 3) AS "#3",
                   count(*) AS products
            FROM industry_top_products t JOIN products p USING (product_id)
            GROUP BY t.industry ORDER BY t.industry
            """
        ).df()
        schema = table_metadata(con, "industry_top_products")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "industries": len(top3),
            "preview": markdown_table(top3, len(top3)),
            **schema,
        }
    )


@dg.asset_check(asset=industry_product_stats, description="(industry, product_id) is unique.")
def stats_unique_key(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT industry, product_id FROM industry_product_stats "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": int(dupes)})


@dg.asset_check(
    asset=industry_top_products,
    description="Every industry that has labeled restaurants with orders has at least one top product.",
)
def every_industry_has_top_products(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        missing = [
            r[0]
            for r in con.execute(
                """
                SELECT DISTINCT l.industry FROM restaurant_industry l
                JOIN orders o USING (restaurant_id)
                WHERE l.industry NOT IN (SELECT industry FROM industry_top_products)
                ORDER BY 1
                """
            ).fetchall()
        ]
        per_industry = con.execute(
            "SELECT industry, count(*) AS products FROM industry_top_products GROUP BY 1 ORDER BY 1"
        ).df()
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={
            "industries_without_products": dg.MetadataValue.json(missing),
            "products_per_industry": markdown_table(per_industry, 20),
        },
    )


assets = [industry_product_stats, industry_top_products]
asset_checks = [stats_unique_key, every_industry_has_top_products]
