"""The short summary `make demo` prints: what was built, where it lives, how to look at it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from recsys_assets.config import Settings

TABLES = (
    "restaurants",
    "products",
    "orders",
    "rejected_rows",
    "restaurant_industry",
    "industry_product_stats",
    "industry_top_products",
    "recommendations",
)
SHOWCASE_INDUSTRIES = ("chicken", "chinese", "cafe_dessert")


def print_summary(settings: Settings, elapsed_seconds: float | None = None) -> None:
    import duckdb

    console = Console()
    con = duckdb.connect(settings.warehouse_database, read_only=True)
    try:
        existing = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        rows = Table(title="Warehouse tables")
        rows.add_column("table")
        rows.add_column("rows", justify="right")
        for name in TABLES:
            if name in existing:
                count = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
                rows.add_row(name, f"{count:,}")
        console.print(rows)

        if "restaurant_industry" in existing:
            dist = Table(title="Label distribution")
            for col in ("industry", "restaurants", "share"):
                dist.add_column(col, justify="right" if col != "industry" else "left")
            for industry, n, share in con.execute(
                "SELECT industry, count(*), count(*) / sum(count(*)) OVER () FROM restaurant_industry "
                "GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall():
                dist.add_row(industry, f"{n:,}", f"{share:.1%}")
            console.print(dist)

        if "industry_top_products" in existing:
            for industry in SHOWCASE_INDUSTRIES:
                top = con.execute(
                    "SELECT t.rank, p.name, p.category, round(t.score, 3) FROM industry_top_products t "
                    "JOIN products p USING (product_id) WHERE t.industry = ? AND t.rank <= 5 ORDER BY t.rank",
                    [industry],
                ).fetchall()
                table = Table(title=f"Top 5 products for {industry}")
                for col in ("rank", "product", "category", "score"):
                    table.add_column(col)
                for r in top:
                    table.add_row(*(str(v) for v in r))
                console.print(table)
    finally:
        con.close()

    console.print(f"[bold]Files[/bold] (RECSYS_HOME={settings.home})")
    console.print(f"  warehouse     {settings.warehouse_database}")
    from recsys_assets.labeling.ledger import ledger_url, safe_url

    console.print(f"  label ledger  {safe_url(ledger_url(settings))}")
    console.print(f"  MLflow store  {settings.mlflow_tracking_uri}")
    console.print(f"  Dagster home  {settings.dagster_home}")
    if elapsed_seconds is not None:
        console.print(f"Materialized every asset in {elapsed_seconds:.1f}s.")
    console.print(
        "Next: [bold]make ui[/bold] (Dagster, port 3000) and "
        "[bold]make mlflow-ui[/bold] (MLflow, port 5000)"
    )
