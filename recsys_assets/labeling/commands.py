"""`recsys label` and `recsys ledger stats|export|prune`, mounted by recsys_assets/cli.py via register().

Imports of pandas and the labeling modules happen inside the commands so `recsys --help` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from recsys_assets.text import count

INTERRUPTED_EXIT = 130
UNANSWERED_EXIT = 3  # some rows got no answer from the model; output written, rerun retries them


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _settings():
    from recsys_assets.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc


def _read_input(path: Path):
    """The input as a DataFrame, read by the ingest's reader (one CSV reader, same validation)."""
    from recsys_assets.labeling.service import REQUIRED_COLUMNS
    from recsys_assets.warehouse.reader import IngestError, read_frame

    if not path.exists():
        _err(f"error: input file {path} does not exist")
        raise typer.Exit(2)
    if path.suffix.lower() not in (".csv", ".parquet"):
        _err(f"error: {path}: input must be .csv or .parquet")
        raise typer.Exit(2)
    try:
        return read_frame(path, REQUIRED_COLUMNS, ("description",))
    except IngestError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None


def _write_atomic(df, path: Path) -> None:
    """Write next to the target then rename, so a kill mid-write never leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.suffix.lower() == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            from recsys_assets.safe_csv import write_csv

            write_csv(df, tmp)  # text cells a spreadsheet would execute are neutralized
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _StopOnSignal:
    """First SIGINT/SIGTERM: stop dispatching, finish the calls in flight. Second SIGINT: quit now."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        _err(
            f"\n{signal.Signals(signum).name}: stopping after the calls in flight "
            "(press Ctrl+C again to quit at once; finished rows are already saved)"
        )

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _check_output(path: Path) -> None:
    """Refuse, before any (paid) work, an output that cannot be written: a directory, a path under a
    regular file, a folder this process may not write to (read-only mount, permissions, a name too
    long). Probed by creating a file where the final write will, so it is the OS that answers."""
    if path.suffix.lower() not in (".csv", ".parquet"):
        _err(f"error: {path}: output must end in .csv or .parquet")
        raise typer.Exit(2)
    if path.is_dir():
        _err(
            f"error: cannot write {path}: it is a directory; give a file name ending in .csv "
            "or .parquet"
        )
        raise typer.Exit(2)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # missing folders are created later
        folder = folder.parent
    if not folder.is_dir():
        _err(f"error: cannot write {path}: {folder} is a file, not a folder")
        raise typer.Exit(2)
    probe = folder / f".{path.name}.{os.getpid()}.probe"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as exc:
        _err(f"error: cannot write {path}: {folder} refuses new files ({exc.strerror})")
        raise typer.Exit(2) from None


def label_cmd(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="CSV or Parquet with restaurant_id, name, menu[, description]."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="CSV or Parquet, by suffix (required unless --dry-run)."
        ),
    ] = None,
    labeler: Annotated[
        str | None,
        typer.Option(
            help="offline | llm | cascade | auto (default: RECSYS_LABELER; openai = llm, deprecated)."
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Parallel LLM calls (RECSYS_LLM_MAX_CONCURRENCY, default 8)."),
    ] = None,
    items_per_call: Annotated[
        int | None,
        typer.Option(
            min=1, help="Restaurants per LLM call (RECSYS_LLM_ITEMS_PER_CALL, default 1)."
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="online (a call per request) | batch (the OpenAI Batch API: half price, answers "
            "within 24 h; a killed run resumes its batches). Default: RECSYS_LLM_MODE or online."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print what the run would send and cost, then stop: no call, no output, no ledger write.",
        ),
    ] = False,
) -> None:
    """Label restaurants with an industry; LLM answers are checkpointed, a rerun resumes.

    Exit codes:
    0 every row answered (or --dry-run printed its plan);
    1 the provider refused (bad key, no quota, unknown or unlisted model, a refused request
      shape, a full context) or another error: no output; the cause is the last line;
    2 bad usage, input, output path, configuration or ledger: nothing done, no call made;
    3 some rows got no answer from the model (with --labeler cascade also when the LLM part
      stopped): output written, those rows label_status=unanswered, rerunning the same command
      calls the model only for them;
    130 interrupted: no output.

    Score a labeler against a gold file instead: recsys label eval --help.
    """
    if dry_run:
        if output is not None:
            _check_output(output)  # the real run would refuse it: say so now
        _dry_run(input_path, _labeler_arg(labeler), max_concurrency, items_per_call, mode)
        return
    if output is None:
        _err("error: give --output/-o FILE (.csv or .parquet), or --dry-run to only see the plan")
        raise typer.Exit(2)
    _check_output(output)
    _label_file(
        input_path, output, _labeler_arg(labeler), progress, max_concurrency, items_per_call, mode
    )


def _label_file(
    input_path: Path,
    output: Path,
    labeler: str | None,
    progress: bool,
    max_concurrency: int | None,
    items_per_call: int | None,
    mode: str | None,
) -> None:
    """The run of `recsys label` once its arguments are checked: label the rows no override sets,
    write the output, end with the exit code label_cmd's docstring lists (labeling's own failures
    in _run_labeler)."""
    settings = _settings()
    full = _read_input(input_path)
    df, mask, fixed = _split_overridden(full, settings)
    labels, report, positions, stopped = _run_labeler(
        df, labeler, settings, output, progress, max_concurrency, items_per_call, mode
    )
    if report.remaining and stopped is None:
        _err(
            f"interrupted: {report.resume_message()}. {output} was NOT written "
            "(it would be incomplete)."
        )
        raise typer.Exit(INTERRUPTED_EXIT)

    out = _output_frame(df, labels, positions, report.labeler)
    if mask.any():
        from recsys_assets.labeling.overrides import merge_output

        out = merge_output(full, out, mask, fixed)
    try:
        _write_atomic(out, output)
    except OSError as exc:  # e.g. the disk filled up while labeling
        _err(
            f"error: cannot write {output}: {exc.strerror or exc}. Every answer is in the ledger: "
            "rerun the same command once fixed, nothing is paid again."
        )
        raise typer.Exit(1) from None
    _err(_summary(report, output))
    if mask.any():
        _err(
            f"plus {int(mask.sum())} row(s) set by label overrides (source override, confidence "
            f"1.0), not sent to any labeler: {count(len(out), 'row')} in {output}"
        )
    unanswered = int((out["label_status"] == "unanswered").sum())
    if unanswered:
        secrets = (settings.llm.api_key_value,)
        _err(
            f"error: {unanswered} of {len(out)} row(s) got no answer from the model "
            f"({_no_answer_causes(report, stopped, secrets)}); they are written as industry "
            "'other', flagged, label_status 'unanswered', and are not in the ledger as answered: "
            f"rerun the same command to retry only those {unanswered} row(s)."
        )
        raise typer.Exit(UNANSWERED_EXIT)


def _run_labeler(
    df, labeler, settings, output: Path, progress, max_concurrency, items_per_call, mode
):
    """(labels, report, positions, stopped) from label_frame. A stop that leaves answers worth
    writing (the circuit breaker, the LLM part of a cascade) returns the partial frame and the
    stop; a refusal by the provider exits 1, bad configuration or ledger 2, a second
    Ctrl+C 130 at once."""
    from recsys_assets.config import ConfigError
    from recsys_assets.labeling.engine import EngineConfig
    from recsys_assets.labeling.ledger import LedgerError
    from recsys_assets.labeling.llm import scrub
    from recsys_assets.labeling.service import LabelingAborted, label_frame

    secrets = (settings.llm.api_key_value,)
    try:
        cfg = EngineConfig.from_settings(
            settings.llm, max_concurrency=max_concurrency, items_per_call=items_per_call
        )
        with _StopOnSignal() as stopper:
            labels, report = label_frame(
                df,
                labeler=labeler,
                settings=settings,
                progress=progress,
                stop_event=stopper.event,
                engine_config=cfg,
                mode=mode,
            )
    except LabelingAborted as exc:
        if exc.reason != "circuit_open" and (exc.report is None or exc.report.labeler != "cascade"):
            # The provider refuses: every further call would fail. The cause goes last.
            _err(f"{output} was not written (the labels are incomplete).")
            _err(f"error: {scrub(exc, secrets)}")
            raise typer.Exit(1) from None
        # The breaker stopped the run, or the LLM part of a cascade stopped: write what was
        # answered (the cascade's offline rows included), mark the rest unanswered (exit 3).
        _err(f"warning: {scrub(exc, secrets)}")
        return exc.frame, exc.report, exc.positions, exc
    except (ConfigError, ValueError, LedgerError) as exc:
        _err(f"error: {scrub(exc, secrets)}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _err(
            f"interrupted at once: every finished call is saved in the ledger, the calls in flight "
            f"are lost. {output} was NOT written. Rerun the same command to resume."
        )
        sys.stderr.flush()
        # Worker threads may be blocked in HTTP calls; committed ledger rows are safe, so leave now.
        os._exit(INTERRUPTED_EXIT)
    return labels, report, None, None


def _split_overridden(df, settings):
    """(rows to label, mask of the overridden rows, the overrides): a human correction wins over
    every labeler, so those rows are never sent (labeling/overrides.py)."""
    import duckdb

    from recsys_assets.labeling import overrides
    from recsys_assets.warehouse.reader import IngestError

    con = duckdb.connect()
    try:
        fixed = overrides.check(con, settings, restaurants=None).valid
    except (IngestError, overrides.OverrideError) as exc:
        _err(f"error: label overrides: {exc}")
        raise typer.Exit(2) from None
    finally:
        con.close()
    mask = overrides.overridden_mask(df["restaurant_id"], fixed)
    return df[~mask.to_numpy()].reset_index(drop=True), mask, fixed


def _labeler_arg(labeler: str | None) -> str | None:
    """--labeler in its one spelling; exit 2 on an unknown name."""
    if labeler is None:
        return None
    from recsys_assets.config import LABELER_ALIASES

    labeler = LABELER_ALIASES.get(labeler.strip().lower(), labeler.strip().lower())
    if labeler not in ("offline", "llm", "cascade", "auto"):
        _err("error: --labeler must be offline, llm, cascade or auto (openai: old name of llm)")
        raise typer.Exit(2)
    return labeler


def _dry_run(
    input_path: Path,
    labeler: str | None,
    max_concurrency: int | None,
    items_per_call: int | None,
    mode: str | None = None,
) -> None:
    """Print the plan of `recsys label` (rows, ledger hits, calls, tokens, cost, time); exit 0."""
    from recsys_assets.config import ConfigError
    from recsys_assets.labeling.engine import EngineConfig
    from recsys_assets.labeling.ledger import LedgerError
    from recsys_assets.labeling.service import plan_labeling

    settings = _settings()
    df, mask, _ = _split_overridden(_read_input(input_path), settings)
    if mask.any():
        typer.echo(
            f"{int(mask.sum()):,} row(s) have a label override: not labeled, not counted below"
        )
    try:
        cfg = EngineConfig.from_settings(
            settings.llm, max_concurrency=max_concurrency, items_per_call=items_per_call
        )
        plan = plan_labeling(df, labeler=labeler, settings=settings, engine_config=cfg, mode=mode)
    except (ConfigError, ValueError, LedgerError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    for line in _plan_lines(plan, settings):
        typer.echo(line)


def _plan_lines(plan, settings) -> list[str]:
    """The dry run's report, one printed line per figure (docs/labeling.md shows the real
    output)."""
    lines = [
        f"dry run: labeler {plan.labeler}"
        + (f", model {plan.model}, fingerprint {plan.fingerprint}" if plan.fingerprint else "")
    ]
    lines.append(_plan_row("input rows", f"{plan.total:,}", ""))
    if plan.labeler in ("offline", "cascade"):
        why = (
            f"(margin >= {settings.llm.cascade_margin})"
            if plan.labeler == "cascade"
            else "(free, no ledger)"
        )
        lines.append(_plan_row("answered offline", f"{plan.offline_answered:,}", why))
    e = plan.estimate
    if plan.labeler != "offline":
        lines += _plan_llm_lines(plan)
    if e is not None:
        lines += _plan_estimate_lines(plan, settings)
    if plan.labeler in ("llm", "cascade") and not settings.has_openai_key:
        lines.append(
            "note: OPENAI_API_KEY is not set: the real run would stop before any call (exit 2)"
        )
    if e is None:
        lines.append(
            "dry run: nothing to send to the LLM, nothing to pay; no call made, nothing written"
        )
    else:
        cost = f"~${e.cost_usd:.4f}" if e.cost_usd is not None else "cost unknown"
        lines.append(
            f"dry run: {plan.to_send:,} inputs would go to the LLM in {e.calls:,} calls, "
            f"{cost}, ~{_duration(e.wall_s)}; no call made, nothing written"
        )
    return lines


def _plan_row(name: str, value: str, note: str) -> str:
    return f"{name:<24}{value:>12}  {note}".rstrip()


def _plan_llm_lines(plan) -> list[str]:
    """Rows for the LLM: how many, how many the ledger answers for free, how many are sent."""
    calls = plan.estimate.calls if plan.estimate else 0
    return [
        _plan_row(
            "rows for the LLM", f"{plan.llm_rows:,}", f"({plan.llm_inputs:,} distinct inputs)"
        ),
        _plan_row(
            "already in the ledger",
            f"{plan.answered_rows:,}",
            f"rows ({plan.answered_inputs:,} inputs) answered under this fingerprint: free",
        ),
        _plan_row(
            "to the LLM",
            f"{plan.to_send:,}",
            f"inputs in {calls:,} calls ({plan.items_per_call} per call)",
        ),
    ]


def _plan_estimate_lines(plan, settings) -> list[str]:
    """Tokens, cost (or why it is unknown) and wall time of what would be sent."""
    from recsys_assets.labeling.llm import price_per_1m

    e = plan.estimate
    lines = [
        _plan_row(
            "estimated tokens",
            f"{e.tokens_in + e.tokens_out:,}",
            f"({e.tokens_in:,} in + {e.tokens_out:,} out; no retries or re-asks)",
        )
    ]
    price = price_per_1m(plan.model, (settings.llm.price_in, settings.llm.price_out))
    if e.cost_usd is None or price is None:
        lines.append(
            _plan_row(
                "estimated cost",
                "unknown",
                f"(no price for {plan.model}: set "
                "RECSYS_LLM_PRICE_IN / RECSYS_LLM_PRICE_OUT, USD per 1M tokens)",
            )
        )
    else:
        lines.append(
            _plan_row(
                "estimated cost",
                f"${e.cost_usd:.4f}",
                f"(${price[0]:g} in / ${price[1]:g} out per 1M tokens"
                + (
                    f", x{settings.llm.batch_price_factor:g} through the Batch API)"
                    if plan.mode == "batch"
                    else ")"
                ),
            )
        )
    lines.append(
        _plan_row(
            "estimated wall time",
            _duration(e.wall_s),
            f"({e.calls:,} calls, {plan.max_concurrency} in flight, "
            f"{e.latency_s:.2f} s per call: {e.latency_source}; bound: {e.bound})",
        )
    )
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _output_frame(df, labels, positions: list[int] | None, labeler: str):
    """The input columns plus the labels. Rows the run never reached (the circuit breaker stopped
    it) are marked like rows whose calls failed: industry other, flagged, label_status unanswered."""
    from recsys_assets import taxonomy

    n = len(df)
    lab = labels.set_axis(positions if positions is not None else range(len(labels)))
    lab = lab.reindex(range(n))
    missing = lab["label_status"].isna().to_numpy()
    if missing.any():
        lab.loc[missing, ["industry", "source", "label_status"]] = [
            taxonomy.OTHER,
            "llm" if labeler == "llm" else "cascade_llm",
            "unanswered",
        ]
        lab.loc[missing, "confidence"] = 0.0
    out = df.copy()
    for col in ("industry", "confidence", "source"):
        out[col] = lab[col].to_numpy()
    out["flagged"] = lab["flagged"].where(~missing, True).astype(bool).to_numpy()
    out["label_status"] = lab["label_status"].to_numpy()
    return out


def _no_answer_causes(report, stopped, secrets: tuple[str | None, ...]) -> str:
    """Why rows have no answer; a stop's own cause in full, so the last line names it."""
    from recsys_assets.labeling.llm import scrub

    failures = report.failures_by_reason
    causes = [
        f"retries exhausted on {k.removeprefix('exhausted:')} for {v}"
        for k, v in sorted(failures.items())
        if k.startswith("exhausted:")
    ]
    if failures.get("peer_failed"):
        causes.append(f"a concurrent worker's calls failed for {failures['peer_failed']}")
    if stopped is not None and stopped.reason == "circuit_open":
        causes.append("the circuit breaker stopped the run")
    elif stopped is not None:
        cause = str(stopped)
        if stopped.report is not None:  # without "(N labeled, M remaining ...)": said below
            cause = cause.removesuffix(f" ({stopped.report.resume_message()})")
        causes.append(f"the LLM part stopped: {scrub(cause, secrets)}")
    return "; ".join(causes) or "no answer"


def _summary(report, output: Path) -> str:
    fp = f", fingerprint {report.fingerprint}" if report.fingerprint else ""
    parts = [f"wrote {output}: {count(report.total, 'row')} ({report.labeler}){fp}"]
    if report.labeler != "offline":
        parts.append(
            f"labeled now {report.labeled_this_run}, from ledger {report.reused_from_ledger}, "
            f"offline {report.offline_answered}; {report.llm_calls} calls, "
            f"{report.tokens_in:,}+{report.tokens_out:,} tokens ({report.tokens_cached:,} cached), "
            f"~${report.estimated_cost_usd:.4f}"
            + (" at the batch price" if report.mode == "batch" else "")
            + f"; invalid {report.invalid}, failed {report.failed}"
        )
        if report.latency_p50_ms is not None:
            parts.append(
                f"latency p50 {report.latency_p50_ms:.0f} ms, p95 {report.latency_p95_ms:.0f} ms"
            )
        if report.structured_output:
            parts.append(f"structured output: {report.structured_output}")
        if report.cascade_rule:
            parts.append(
                f"cascade routing {report.cascade_rule}; the lexicon's label kept on "
                f"{report.cascade_kept_offline} of the rows sent to the model"
            )
    return "\n".join(parts)


# -- recsys label eval -------------------------------------------------------------------------
def eval_cmd(
    gold: Annotated[
        Path | None,
        typer.Argument(
            metavar="GOLD.csv",
            help="CSV with name, menu, industry[, description, split]; default: the packaged real-world set (170 restaurants).",
            show_default=False,
        ),
    ] = None,
    labeler: Annotated[
        str | None,
        typer.Option(
            help="offline | llm | cascade (default: RECSYS_LABELER; auto = llm with a key, else offline)."
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Refit this model's cascade routing rule on the gold rows (llm or cascade), report its cross-validated accuracy and write the routing file.",
        ),
    ] = False,
    routing_out: Annotated[
        Path | None,
        typer.Option(
            help="Where --calibrate writes the routing file (default: RECSYS_CASCADE_ROUTING, else $RECSYS_HOME/cascade_routing.yaml)."
        ),
    ] = None,
    log_mlflow: Annotated[
        bool,
        typer.Option(
            "--mlflow/--no-mlflow",
            help="Log an evaluation run to MLflow (experiment labeling-eval).",
        ),
    ] = True,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
) -> None:
    """Score a labeler against a gold file: accuracy with a 95% CI, per-industry precision/recall,
    confusions, flagged share, calls, tokens and cost per 1k rows; logged to MLflow.

    LLM answers go through the ledger like `recsys label`: evaluating again costs no call.

    Exit codes:
    0 scored;
    1 the provider refused (bad key, no quota, unknown model) or another error;
    2 bad usage, gold file, configuration, ledger or routing file: no call made;
    3 some rows got no answer from the model: scored as wrong, a rerun retries only them;
    130 interrupted: nothing scored, the answers so far are in the ledger.
    """
    from recsys_assets.labeling import evaluate as ev_mod

    settings = _settings()
    kind, gold_set, table = _eval_inputs(gold, labeler, calibrate, settings)
    ev = _evaluate(gold_set, kind, settings, progress)
    typer.echo("\n".join(ev_mod.report_lines(ev, table)))
    cal = _calibrate(ev, table, settings, routing_out) if calibrate else None
    if log_mlflow:
        run_id, uri = ev_mod.log_mlflow(ev, settings, table, cal)
        typer.echo(f"\nmlflow: run {run_id} in experiment {ev_mod.EXPERIMENT} ({uri})")
    unanswered = ev.status.count("unanswered")
    if unanswered:
        scored = (
            "scored with the lexicon's label"
            if ev.labeler == "cascade"
            else "scored as wrong (label other)"
        )
        _err(
            f"error: {unanswered} of {ev.n} gold row(s) got no answer from the model and were "
            f"{scored}; rerun the same command to retry only those"
        )
        raise typer.Exit(UNANSWERED_EXIT)


def _eval_inputs(gold: Path | None, labeler: str | None, calibrate: bool, settings):
    """(labeler, gold set, routing table) for `recsys label eval`; exit 2 before any call."""
    from recsys_assets.config import ConfigError, normalize_labeler
    from recsys_assets.datafiles import DataFileError
    from recsys_assets.labeling import cascade
    from recsys_assets.labeling import evaluate as ev_mod

    try:
        kind = normalize_labeler(labeler, "--labeler") if labeler else settings.resolved_labeler()
        kind = settings.resolved_labeler() if kind == "auto" else kind
        if calibrate and kind == "offline":
            raise ConfigError(
                "--calibrate fits where the cascade trusts a model: use --labeler "
                "cascade or llm (with OPENAI_API_KEY / OPENAI_BASE_URL)"
            )
        gold_set = ev_mod.load_gold(gold)
        table = cascade.load_routing(settings.llm.cascade_routing)
    except (ConfigError, DataFileError, ev_mod.EvalError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    return kind, gold_set, table


def _evaluate(gold_set, kind: str, settings, progress: bool):
    """Label the gold rows (through the ledger) and score them; the exit codes of eval_cmd's
    docstring for a refusal (1), bad settings or ledger (2), an interruption (130)."""
    from recsys_assets.config import ConfigError
    from recsys_assets.labeling import evaluate as ev_mod
    from recsys_assets.labeling.ledger import LedgerError
    from recsys_assets.labeling.llm import scrub
    from recsys_assets.labeling.service import LabelingAborted

    secrets = (settings.llm.api_key_value,)
    try:
        with _StopOnSignal() as stopper:
            return ev_mod.evaluate(
                gold_set, kind, settings, progress=progress, stop_event=stopper.event
            )
    except LabelingAborted as exc:
        _err(f"error: {scrub(exc, secrets)}")
        raise typer.Exit(1) from None
    except ev_mod.EvalInterrupted as exc:
        _err(f"interrupted: {exc}; nothing was scored")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except (ConfigError, ValueError, LedgerError) as exc:
        _err(f"error: {scrub(exc, secrets)}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _err("interrupted at once: every finished call is saved in the ledger; nothing was scored")
        sys.stderr.flush()
        os._exit(INTERRUPTED_EXIT)


def _calibrate(ev, table, settings, routing_out: Path | None):
    """Fit and cross-validate the model's routing rule; write it to the routing file."""
    from recsys_assets.labeling import evaluate as ev_mod

    cal = ev_mod.calibrate(ev, table)
    typer.echo("\n".join(ev_mod.calibration_lines(cal, ev.n)))
    configured = settings.llm.cascade_routing
    out = routing_out or (
        Path(configured) if configured else settings.home / "cascade_routing.yaml"
    )
    try:
        ev_mod.write_routing(cal, ev, table, out)
    except (OSError, ValueError) as exc:
        _err(f"error: cannot write the routing file {out}: {exc}")
        raise typer.Exit(1) from None
    note = (
        ""
        if configured and Path(configured) == out
        else f"; the cascade uses it with RECSYS_CASCADE_ROUTING={out}"
    )
    typer.echo(f"  wrote the rule for {cal.fit.rule.entry} to {out}{note}")
    return cal


# -- ledger sub-commands -----------------------------------------------------------------------
def _open_ledger(must_exist: bool = True, settings=None):
    from sqlalchemy.engine import make_url

    from recsys_assets.labeling.ledger import LedgerError, ledger_url, open_ledger

    settings = settings or _settings()
    url = ledger_url(settings)
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - any unparsable URL: the ledger's own check names it later
        parsed = None
    if must_exist and parsed is not None and parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if parsed.database and not path.exists():
            _err(
                f"no ledger at {path} (nothing has been labeled with the LLM under this RECSYS_HOME)"
            )
            raise typer.Exit(0)
    try:
        return open_ledger(settings)
    except (LedgerError, ValueError) as exc:  # the message is password-free by construction
        _err(f"error: {exc}")
        raise typer.Exit(2) from None


def ledger_stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    items_per_call: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="For the current fingerprint: restaurants per call, as `recsys label --items-per-call` (default RECSYS_LLM_ITEMS_PER_CALL).",
        ),
    ] = None,
) -> None:
    """Rows by fingerprint and status, tokens and cost; the fingerprint the current settings and
    prompt produce, and how many answered inputs an edit would pay for again."""
    from recsys_assets.config import ConfigError
    from recsys_assets.labeling.service import current_fingerprint

    settings = _settings()
    try:
        current, params = current_fingerprint(settings, items_per_call=items_per_call)
    except (ConfigError, ValueError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    with _open_ledger(settings=settings) as ledger:
        stats = ledger.stats(current=current)
    stats["current"]["params"] = params
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    for line in _stats_lines(stats):
        typer.echo(line)


def _stats_lines(stats: dict[str, Any]) -> list[str]:
    cur = stats["current"]
    p = cur["params"]
    by_status = ", ".join(f"{k} {v}" for k, v in stats["by_status"].items())
    lines = [
        (
            f"ledger {stats['path']}: {count(stats['rows'], 'row')} {by_status}; tokens "
            f"{stats['tokens_in']:,} in ({stats.get('tokens_cached', 0):,} cached) / "
            f"{stats['tokens_out']:,} out; cost ~${stats['cost_usd']:.4f}"
        ),
        (
            f"current fingerprint {cur['fingerprint']} ({_describe(p)}; from the settings and prompt "
            f"of this checkout): {cur['answered']} inputs answered under it"
        ),
        (
            f"re-pay: {cur['repay_inputs']} inputs answered only under other fingerprints would be "
            "paid for again when labeled under the current one"
        ),
        (
            f"  {'fingerprint':<18}{'status':<9}{'rows':>8}{'tokens_in':>12}{'tokens_out':>12}"
            f"{'cost_usd':>11}  model x per call, temperature, prompt (label)"
        ),
    ]
    for g in stats["groups"]:
        mark = "*" if g["current"] else " "
        lines.append(
            f"{mark} {g['fingerprint']:<18}{g['status']:<9}{g['rows']:>8}"
            f"{g['tokens_in']:>12,}{g['tokens_out']:>12,}{g['cost_usd']:>11.4f}  "
            f"{_describe(g['params'])} ({g['prompt_version'] or '?'})"
        )
    lines.append("(* = the current fingerprint)")
    for mode, m in (stats.get("by_mode") or {}).items():
        lines.append(
            f"mode {mode}: {m['rows']} rows, tokens {m['tokens_in']:,} in ({m['tokens_cached']:,} "
            f"cached) / {m['tokens_out']:,} out, cost ~${m['cost_usd']:.4f}"
        )
    if stats.get("batches"):
        states = ", ".join(f"{k} {v}" for k, v in stats["batches"].items())
        lines.append(f"batches (Batch API jobs): {states}")
    return lines


def _describe(params: dict[str, Any]) -> str:
    """model x items per call, temperature, the rendered prompt's digest (older fingerprints
    predate the digest and show `prompt ?`)."""
    prompt = str(params.get("system_prompt_sha256", "?"))[:8]
    return (
        f"{params.get('model', '?')} x{params.get('items_per_call', 1)}, "
        f"t={params.get('temperature', '?')}, prompt {prompt}"
    )


def ledger_export(
    output: Annotated[Path, typer.Argument(help="CSV or Parquet, by suffix.")],
    fingerprint: Annotated[str | None, typer.Option(help="Only this fingerprint.")] = None,
    status: Annotated[str | None, typer.Option(help="ok | invalid | failed")] = None,
) -> None:
    """Export ledger rows (raw answers included) for audit or analysis."""
    with _open_ledger() as ledger:
        try:
            n = ledger.export(output, fingerprint=fingerprint, status=status)
        except ValueError as exc:
            _err(f"error: {exc}")
            raise typer.Exit(2) from None
    typer.echo(f"exported {count(n, 'row')} to {output}")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")


def _parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text)
    if not m:
        raise typer.BadParameter("use a number and a unit d/h/m, e.g. 30d, 12h, 90m")
    value, unit = float(m.group(1)), m.group(2)
    return {"d": timedelta(days=value), "h": timedelta(hours=value), "m": timedelta(minutes=value)}[
        unit
    ]


def ledger_prune(
    fingerprint: Annotated[
        str | None, typer.Option(help="Delete rows of this fingerprint.")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Rows last updated before now minus this (30d, 12h).")
    ] = None,
    status: Annotated[str | None, typer.Option(help="ok | invalid | failed")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Really delete (default is a dry run).")
    ] = False,
) -> None:
    """Delete ledger rows matching ALL given filters. Dry run unless --yes."""
    if fingerprint is None and older_than is None and status is None:
        _err("error: give at least one of --fingerprint, --older-than, --status")
        raise typer.Exit(2)
    age = _parse_duration(older_than) if older_than else None
    with _open_ledger() as ledger:
        try:
            n = ledger.prune(
                fingerprint=fingerprint, older_than=age, status=status, dry_run=not yes
            )
        except ValueError as exc:
            _err(f"error: {exc}")
            raise typer.Exit(2) from None
    if yes:
        typer.echo(f"deleted {count(n, 'row')}")
    else:
        typer.echo(f"would delete {count(n, 'row')} (dry run; add --yes to delete)")


class _DefaultContext(typer.Context):
    @property
    def command_path(self) -> str:  # `recsys label`, not `recsys label ` (its name is empty)
        return super().command_path.rstrip()


class _DefaultCommand(TyperCommand):
    context_class = _DefaultContext


class _LabelGroup(TyperGroup):
    """`recsys label INPUT -o OUT` labels (as it always did); `recsys label eval|override|review
    ...` are sub-commands.

    Anything after `label` that is not a sub-command's name goes to the hidden default command,
    whose help is also the group's help (with a line pointing at the sub-commands)."""

    DEFAULT = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.DEFAULT, *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        # usage and errors of the default command read `recsys label ...`, not `recsys label run`
        return ("" if name == self.DEFAULT else name), cmd, rest

    def format_help(self, ctx: Any, formatter: Any) -> None:
        run = self.commands[self.DEFAULT]
        run.format_help(typer.Context(run, info_name=ctx.info_name, parent=ctx.parent), formatter)


def register(app: typer.Typer) -> None:
    """Add `label` (with `label eval`, `label override`, `label review`) and the `ledger` sub-app
    to the main `recsys` app."""
    from recsys_assets.labeling.override_commands import override_cmd, review_cmd

    label_app = typer.Typer(
        cls=_LabelGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )
    label_app.command(_LabelGroup.DEFAULT, hidden=True, cls=_DefaultCommand)(label_cmd)
    label_app.command("eval")(eval_cmd)
    label_app.command("override")(override_cmd)
    label_app.command("review")(review_cmd)
    app.add_typer(
        label_app,
        name="label",
        help="Label restaurants with an industry "
        "(`recsys label INPUT -o OUT`), score a labeler (`recsys label eval`), correct "
        "one (`recsys label override`), list what to check (`recsys label review`).",
    )
    ledger_app = typer.Typer(
        help="Inspect and maintain the LLM labeling ledger.", no_args_is_help=True
    )
    ledger_app.command("stats")(ledger_stats)
    ledger_app.command("export")(ledger_export)
    ledger_app.command("prune")(ledger_prune)
    app.add_typer(ledger_app, name="ledger")


def main() -> None:  # `python -m recsys_assets.labeling.commands ...` (tests, debugging)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
    sys.exit(0)
