"""The `recsys` command line.

Imports are lazy on purpose: `recsys recommend` must start in well under three seconds, so no
command pays for importing Dagster, MLflow or LightGBM unless it uses them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="recsys-assets: cold-start product recommendations for restaurants.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings():
    from recsys_assets.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("generate-sample")
def generate_sample_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files to.")],
    scale: Annotated[str, typer.Option(help="small | medium | large")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 42,
    fmt: Annotated[str, typer.Option("--format", help="parquet | csv")] = "csv",
) -> None:
    """Write a realistic sample (restaurants, products, orders + a separate ground_truth/ folder)."""
    from recsys_assets.sample_data import SCALES, generate_sample

    if scale not in SCALES:
        typer.echo(f"error: --scale must be one of {', '.join(SCALES)}", err=True)
        raise typer.Exit(2)
    if fmt not in ("csv", "parquet"):
        typer.echo("error: --format must be csv or parquet", err=True)
        raise typer.Exit(2)
    start = time.perf_counter()
    files = generate_sample(out, scale=scale, seed=seed, fmt=fmt, progress=True)
    typer.echo(
        f"wrote {files.restaurants}, {files.products}, {files.orders} "
        f"(ground truth in {files.ground_truth}) in {time.perf_counter() - start:.1f}s"
    )


def _materialize(selection: str | None) -> bool:
    settings = _settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    import dagster as dg

    from recsys_assets.definitions import build_defs

    defs = build_defs(settings)
    job = defs.resolve_job_def("rebuild_job")
    instance = dg.DagsterInstance.get()
    kwargs = {"asset_selection": [dg.AssetKey(s.strip()) for s in selection.split(",")]} if selection else {}
    result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            typer.echo(f"step failed: {event.step_key}: {event.event_specific_data.error.message}", err=True)
    return result.success


@app.command()
def materialize(
    select: Annotated[
        str | None, typer.Option(help="Comma-separated asset names; default: every asset.")
    ] = None,
) -> None:
    """Materialize the asset graph in this process (runs are recorded in DAGSTER_HOME for the UI)."""
    start = time.perf_counter()
    ok = _materialize(select)
    typer.echo(f"materialize {'succeeded' if ok else 'FAILED'} in {time.perf_counter() - start:.1f}s")
    raise typer.Exit(0 if ok else 1)


@app.command()
def demo() -> None:
    """Materialize every asset on the embedded defaults, then print a summary."""
    start = time.perf_counter()
    ok = _materialize(None)
    elapsed = time.perf_counter() - start
    if not ok:
        typer.echo("demo: materialization failed (see the messages above)", err=True)
        raise typer.Exit(1)
    from recsys_assets.summary import print_summary

    print_summary(_settings(), elapsed_seconds=elapsed)


@app.command()
def summary() -> None:
    """Print rows per table, the label distribution and top products from the warehouse."""
    from recsys_assets.summary import print_summary

    print_summary(_settings())


@app.command()
def alerts(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 20,
    kind: Annotated[
        str | None, typer.Option(help="system_failure | model_quality")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List recent alerts (failed runs, rejected models) recorded under RECSYS_HOME."""
    import json

    from recsys_assets.alerts import KINDS, alert_store

    if kind is not None and kind not in KINDS:
        typer.echo(f"error: --kind must be one of {', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    rows = alert_store(_settings().home).recent(limit=limit, kind=kind)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no alerts recorded")
        return
    for row in rows:
        where = " ".join(f"{k}={row[k]}" for k in ("job_name", "step_key", "run_id") if row[k])
        typer.echo(f"#{row['id']} {row['created_at']} [{row['kind']}] {where}")
        typer.echo(f"    {row['error_class'] + ': ' if row['error_class'] else ''}{row['message']}")
        if row["remedy"]:
            typer.echo(f"    → {row['remedy']}")


def _register_optional() -> None:
    """Command groups that live beside their domain code."""
    from recsys_assets.labeling.commands import register as register_labeling

    register_labeling(app)


def main() -> None:
    _register_optional()
    app()


if __name__ == "__main__":
    sys.exit(main())
