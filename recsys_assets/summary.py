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
DECISIONS_TABLE = "rk_gate_decisions"  # written by champion_model (ranking.registry.save_decision)


def decision_lines(con, since=None) -> list[str]:
    """The latest promotion decision: why, then the champion with its NDCG@10 vs the baseline.

    `since` (a naive UTC datetime): only a decision made after it (this run's), else [].
    """
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [DECISIONS_TABLE]
    ).fetchall()[0][0]
    if not exists:
        return []
    row = con.execute(
        f"SELECT decided_at, promoted, challenger_version, champion_version, champion_kind, "
        f"champion_ndcg_at_10, strongest_baseline, baseline_ndcg_at_10, reason FROM {DECISIONS_TABLE} "
        "ORDER BY decided_at DESC LIMIT 1"
    ).fetchone()
    if row is None or (since is not None and row[0] < since):
        return []
    _, promoted, challenger, champion, kind, ndcg, best, best_ndcg, reason = row
    verdict = (
        f"challenger v{challenger} promoted"
        if promoted and champion == challenger
        else ("a baseline promoted" if promoted else "champion unchanged")
    )
    ndcg_txt = "n/a" if ndcg is None else f"{ndcg:.4f}"
    best_txt = "n/a" if best_ndcg is None else f"{best_ndcg:.4f}"
    return [
        f"Promotion gate: {reason}",
        (
            f"Promotion: {verdict}; champion v{champion or 'none'} ({kind}) NDCG@10 {ndcg_txt} "
            f"vs strongest baseline {best} {best_txt}"
        ),
    ]


def print_decision(settings: Settings, since=None) -> None:
    """The latest decision from the warehouse (read-only; nothing when there is none)."""
    import duckdb

    if not settings.warehouse_db and not settings.warehouse_path.exists():
        return
    con = duckdb.connect(settings.warehouse_database, read_only=True)
    try:
        lines = decision_lines(con, since)
    finally:
        con.close()
    for line in lines:
        print(line)


def print_summary(settings: Settings, elapsed_seconds: float | None = None) -> None:
    import duckdb

    console = Console()
    con = duckdb.connect(settings.warehouse_database, read_only=True)
    decision: list[str] = []
    try:
        decision = decision_lines(con)
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
    for line in decision:  # last: whether the served model changed, and against what
        console.print(line, markup=False, highlight=False, soft_wrap=True)
