"""The `recsys` command line.

Imports are lazy on purpose: `recsys recommend` must start in well under three seconds, so no
command pays for importing Dagster, MLflow or LightGBM unless it uses them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="recsys-assets: cold-start product recommendations for restaurants.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help and errors: every error is then one plain `Error: ...`/`error: ...` line
    # (no boxes), and options are not listed with `<bool>`/`<str>` type tags.
    rich_markup_mode=None,
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
    world: Annotated[
        str,
        typer.Option(
            help="Generating mechanism: default | recipe | menu_items | long_tail | random "
            "(recsys_assets/data/worlds.yaml; random: drawn from the seed).",
            envvar="RECSYS_SAMPLE_WORLD",
        ),
    ] = "default",
) -> None:
    """Write a realistic sample (restaurants, products, orders + a separate ground_truth/ folder)."""
    from recsys_assets.sample_data import SCALES, generate_sample
    from recsys_assets.sample_worlds import world_names

    if scale not in SCALES:
        typer.echo(f"error: --scale must be one of {', '.join(SCALES)}", err=True)
        raise typer.Exit(2)
    if world.strip().lower() not in world_names():
        typer.echo(f"error: --world must be one of {', '.join(world_names())}", err=True)
        raise typer.Exit(2)
    if fmt not in ("csv", "parquet"):
        typer.echo("error: --format must be csv or parquet", err=True)
        raise typer.Exit(2)
    start = time.perf_counter()
    files = generate_sample(out, scale=scale, seed=seed, fmt=fmt, progress=True, world=world)
    typer.echo(
        f"wrote {files.restaurants}, {files.products}, {files.orders} "
        f"(ground truth in {files.ground_truth}) in {time.perf_counter() - start:.1f}s"
    )


def _warn(message: str) -> None:
    typer.echo(message, err=True)


def _reap_crashed(settings) -> None:
    """Runs of `recsys` processes that died (kill -9, out of memory) are marked failed and
    alerted here, at the next start of materialize/demo/summary/alerts (cheap when none)."""
    from recsys_assets.run_markers import dead_markers

    markers = dead_markers(settings.home)
    if not markers:
        return
    from recsys_assets.orchestration.cli_runs import reap_dead_runs

    try:
        reap_dead_runs(settings, markers, warn=_warn)
    except Exception as exc:  # noqa: BLE001 (never let the check stop the command itself)
        _warn(
            f"warning: could not check runs of dead recsys processes: {type(exc).__name__}: {exc}"
        )


# Python's cyclic GC runs a young pass every 700 net allocations and a full pass over every live
# object each time the long-lived ones grow by a quarter: importing Dagster, MLflow, LightGBM (with
# scikit-learn) and matplotlib in a rebuild triggers ~10 full passes over ~0.7M objects, ~5 of a
# small rebuild's ~50 CPU-s. Young passes every 10,000 allocations leave 1 full pass (the data
# lives in DuckDB and numpy, freed by reference counting, not by the GC). Peak memory in one pair
# each, at load ~10: small 0.77 against 0.79 GiB, medium 1.33 against 1.27 (benchmarks/REPORT.md).
REBUILD_GC_THRESHOLD = (10_000, 10, 10)

# Set once a rebuild ran in this process: `main` then ends it without the interpreter's teardown.
_REBUILT: list[bool] = []


def _materialize(selection: str | None, verbose: bool):
    """Run the rebuild in this process; exits 75 when another rebuild holds this RECSYS_HOME."""
    import gc

    from recsys_assets.run_markers import BUSY_EXIT_CODE, Busy, rebuild_lock

    gc.set_threshold(*REBUILD_GC_THRESHOLD)
    _REBUILT.append(True)
    settings = _settings()
    _reap_crashed(settings)
    try:
        with rebuild_lock(settings.home):
            import dagster as dg

            from recsys_assets.orchestration import cli_runs

            instance = cli_runs.open_instance(settings, warn=_warn)
            keys = (
                [dg.AssetKey(s.strip()) for s in selection.split(",") if s.strip()]
                if selection
                else None
            )
            try:
                return cli_runs.materialize(settings, instance, keys, verbose=verbose)
            except cli_runs.SelectionError as exc:  # nothing ran; the cause is the last line
                _warn(f"assets: {', '.join(exc.names)}")
                _warn(f"error: {exc}")
                raise typer.Exit(2) from exc
    except Busy as exc:
        _warn(
            f"error: another rebuild is running on {settings.home} ({exc.holder}); it writes the "
            f"same warehouse, so wait for it to finish (exit code {BUSY_EXIT_CODE}: try again later)"
        )
        raise typer.Exit(BUSY_EXIT_CODE) from exc


def _report_failure(command: str, elapsed: float, outcome) -> None:
    """The run, the alert and the log first; the real cause of each failed step LAST."""
    _warn(
        f"{command} FAILED in {elapsed:.1f}s: run {outcome.run_id}, alert #{outcome.alert_id} "
        f"(`recsys alerts`), full log {outcome.log_path}"
    )
    for error in outcome.errors:
        _warn(f"error: {error.line()}")


_VERBOSE = typer.Option("--verbose", "-v", help="Print Dagster's full event log (with traces).")


@app.command()
def materialize(
    select: Annotated[
        str | None, typer.Option(help="Comma-separated asset names; default: every asset.")
    ] = None,
    verbose: Annotated[bool, _VERBOSE] = False,
) -> None:
    """Materialize the asset graph in this process (runs are recorded in DAGSTER_HOME for the UI).

    Exit codes: 0 done, 1 a step failed (alerted; the cause is the last line), 2 bad settings
    or --select, 75 another rebuild is running on this RECSYS_HOME.
    """
    from datetime import UTC, datetime

    started_at = datetime.now(UTC).replace(tzinfo=None)
    start = time.perf_counter()
    outcome = _materialize(select, verbose)
    elapsed = time.perf_counter() - start
    if not outcome.success:
        _report_failure("materialize", elapsed, outcome)
        raise typer.Exit(1)
    typer.echo(f"materialize succeeded in {elapsed:.1f}s (run {outcome.run_id})")
    from recsys_assets.summary import print_decision

    print_decision(_settings(), since=started_at)  # when this run decided on the champion


@app.command()
def demo(verbose: Annotated[bool, _VERBOSE] = False) -> None:
    """Materialize every asset on the embedded defaults, then print a summary.

    Exit codes as for materialize.
    """
    start = time.perf_counter()
    outcome = _materialize(None, verbose)
    elapsed = time.perf_counter() - start
    if not outcome.success:
        _report_failure("demo", elapsed, outcome)
        raise typer.Exit(1)
    from recsys_assets.summary import print_summary

    print_summary(_settings(), elapsed_seconds=elapsed)


@app.command()
def summary() -> None:
    """Print rows per table, the label distribution and top products from the warehouse."""
    from recsys_assets.summary import print_summary

    settings = _settings()
    _reap_crashed(settings)
    print_summary(settings)


@app.command()
def alerts(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 20,
    kind: Annotated[str | None, typer.Option(help="system_failure | model_quality")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List recent alerts (failed runs, rejected models) recorded under RECSYS_HOME."""
    import json

    from recsys_assets.alerts import KINDS, alert_store

    if kind is not None and kind not in KINDS:
        typer.echo(f"error: --kind must be one of {', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    settings = _settings()
    _reap_crashed(settings)
    rows = alert_store(settings.home).recent(limit=limit, kind=kind)
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


@app.command()
def recommend(
    name: Annotated[str, typer.Option(help="Restaurant name.")],
    menu: Annotated[str, typer.Option(help="Menu items separated by '|'.")] = "",
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="How many products.")] = 10,
    industry: Annotated[
        str | None, typer.Option(help="Skip labeling and use this taxonomy code.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Optional description.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recommend products for a new restaurant from the champion model in the MLflow registry."""
    import json

    from recsys_assets import taxonomy
    from recsys_assets.ranking.recommend import NoChampionError
    from recsys_assets.ranking.recommend import recommend as run_recommend

    settings = _settings()
    if industry is not None and not taxonomy.is_valid(industry):
        typer.echo(
            f"error: --industry must be one of {', '.join(taxonomy.INDUSTRY_CODES)}", err=True
        )
        raise typer.Exit(2)
    if industry is None and settings.resolved_labeler() != "offline":
        # The configured LLM (or cascade) labels it, through the same ledger as the pipeline.
        import pandas as pd

        from recsys_assets.labeling.service import label_frame

        frame = pd.DataFrame(
            [{"restaurant_id": "cli", "name": name, "menu": menu, "description": description or ""}]
        )
        labels, _ = label_frame(frame, settings=settings)
        industry = str(labels["industry"].iloc[0])
    try:
        result = run_recommend(
            name, menu, k=k, industry=industry, settings=settings, description=description
        )
    except NoChampionError as exc:
        typer.echo(f"error: {exc} (run `make demo` or materialize champion_model first)", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"industry: {result['industry']} (model version {result['model_version']})")
    typer.echo("rank  score  product")  # score: the ranker's, mapped to 0-1 (higher is better)
    for i, p in enumerate(result["products"], 1):
        typer.echo(f"{i:>4}  {p['score']:.3f}  {p['name']} [{p['product_id']}]")


model_app = typer.Typer(help="The registered ranker: aliases and rollback.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("status")
def model_status() -> None:
    """Show every registered version: aliases, kind (ranker or baseline), NDCG@10, date, decision."""
    from recsys_assets.ranking.names import MODEL_NAME
    from recsys_assets.ranking.status import format_status, versions

    rows = versions(_settings())
    if not rows:
        typer.echo(f"{MODEL_NAME}: no version registered yet")
        return
    for line in format_status(rows):
        typer.echo(line)


@model_app.command("rollback")
def model_rollback(
    reason: Annotated[
        str, typer.Option(help="Why; stored as a tag on the demoted version.")
    ] = "manual rollback",
) -> None:
    """Make the `previous` version champion again (the demoted version is tagged)."""
    from recsys_assets.ranking.registry import rollback

    try:
        result = rollback(_settings(), reason=reason)
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"champion is now version {result['champion']} (demoted {result['demoted'] or 'none'})"
    )


def _register_optional() -> None:
    """Command groups that live beside their domain code."""
    from recsys_assets.labeling.commands import register as register_labeling

    register_labeling(app)


def _leave(code: int) -> None:
    """End the process now: the exit handlers run and the output is flushed, but not the
    interpreter's teardown. After a rebuild that teardown is its cyclic GC walking the ~1M objects
    Dagster, MLflow, LightGBM and matplotlib left (3-4 s wall, 1-2 CPU-s of a rebuild,
    benchmarks/REPORT.md); the OS frees the memory at once. Returns (the caller exits normally)
    while a non-daemon thread still runs: the normal exit waits for it."""
    import atexit
    import os
    import sys
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()  # logging's flush and close, the libraries' own handlers
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def main() -> None:
    _register_optional()
    try:
        app()
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
        if _REBUILT and isinstance(code, int):
            _leave(code)
        raise


if __name__ == "__main__":
    main()  # app() exits with the command's code itself
