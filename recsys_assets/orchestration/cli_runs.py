"""Runs of the `recsys` CLI: executed in this process, on the project's instance, never silent.

`recsys materialize`/`demo` need no daemon (cron is enough), so this module does for their runs
what the daemon and the code server do for launched ones:
- the project's instance settings (recsys_assets/dagster.yaml), storage created under a lock so
  that two first starts do not race on its tables;
- a marker while the run lives; a run whose process died is marked failed at the next CLI start,
  its pool slots are given back and it is alerted;
- a failed run is alerted at once (same text as the failure sensor; one alert per run), the
  terminal gets one line per step and the real cause last, the full log a file.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.utils import make_new_run_id

from recsys_assets.alerts import alert_store
from recsys_assets.config import Settings, set_process_env
from recsys_assets.instance import differs_warning, ensure_dagster_yaml, file_lock
from recsys_assets.orchestration.failures import (
    StepError,
    failed_run_alert,
    run_errors,
    running_step,
    step_error,
)
from recsys_assets.orchestration.jobs import LAUNCHED_BY_TAG
from recsys_assets.redact import scrub
from recsys_assets.run_markers import RunMarker

CODE_LOCATION = "recsys_assets"  # pyproject.toml [tool.dagster] code_location_name
PID_TAG = "recsys/pid"
HOST_TAG = "recsys/host"
# Where Dagster's default (unconfigured) SQLite storage lives under DAGSTER_HOME.
DEFAULT_SQLITE_STORAGE = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")


def open_instance(
    settings: Settings, warn: Callable[[str], None] | None = None
) -> dg.DagsterInstance:
    """The instance in settings.dagster_home, on the project's dagster.yaml.

    Creating the SQLite storage is not safe to race (two first starts collide on its schema
    tables), so it happens under $DAGSTER_HOME/.init.lock.
    """
    home = settings.dagster_home
    set_process_env("DAGSTER_HOME", str(home))  # also when it was set but empty
    differs = ensure_dagster_yaml(home)
    if differs and warn:
        warn(differs_warning(home, differs))
    from recsys_assets.sqlite_sync import sqlite_synchronous

    # A first start creates the default SQLite storage with ~300 fsyncs (each table and index its
    # own commit, ~1 s of a first rebuild's wall time): skipped for the files created now, as
    # for MLflow's store (ranking/registry.py).
    new = [f for f in (home / p for p in DEFAULT_SQLITE_STORAGE) if not f.exists()]
    with file_lock(home / ".init.lock"), sqlite_synchronous(new, "OFF"):
        return dg.DagsterInstance.get()


def log_path(settings: Settings, run_id: str) -> Path:
    return settings.logs_dir / f"{run_id}.log"


def _alert(instance: dg.DagsterInstance, settings: Settings, run: dg.DagsterRun) -> int:
    path = log_path(settings, run.run_id)
    alert = failed_run_alert(instance, run, log_path=str(path) if path.exists() else None)
    return alert_store(settings.home).record(alert, webhook_url=settings.alerts.webhook_url_value)


def reap_dead_runs(
    settings: Settings, markers: Sequence[RunMarker], warn: Callable[[str], None]
) -> list[str]:
    """Mark the runs of dead CLI processes failed, free their pool slots, alert them once."""
    instance = open_instance(settings)
    reaped = []
    for marker in markers:
        if marker.dagster_home != str(settings.dagster_home):
            continue  # another instance's run; checked when that instance is used
        run = instance.get_run_by_id(marker.run_id)
        if run is not None and not run.is_finished:
            step = running_step(instance, run.run_id)
            where = f"while step {step} was running" if step else "before any step started"
            instance.report_run_failed(
                run,
                f"The recsys process running this run (pid {marker.pid} on {marker.host}) died "
                f"{where}: killed (e.g. kill -9), out of memory or the machine stopped.",
                JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
            )
            reaped.append(run.run_id)
            run = instance.get_run_by_id(run.run_id)
        if run is not None:
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            if run.status == dg.DagsterRunStatus.FAILURE:
                alert_id = _alert(instance, settings, run)
                if run.run_id in reaped:
                    warn(
                        f"note: run {run.run_id} had died with its process (pid {marker.pid}); "
                        f"marked failed, alert #{alert_id} recorded"
                    )
        marker.remove(settings.home)
    return reaped


class _StepLines(logging.Handler):
    """The terminal's view of a run: one line per finished step, warnings, failed checks."""

    def __init__(self, stream) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        line = _step_line(record)
        if line:
            self.stream.write(scrub(line) + "\n")
            self.stream.flush()


def _step_line(record: logging.LogRecord) -> str | None:
    meta = getattr(record, "dagster_meta", None) or {}
    event: dg.DagsterEvent | None = meta.get("dagster_event")
    step = meta.get("step_key") or ""
    if event is None:
        # Errors always come with a STEP_FAILURE event (printed below); warnings are the
        # assets' own (e.g. rejected rows).
        if record.levelno == logging.WARNING:
            text = (meta.get("orig_message") or record.getMessage()).strip()
            return f"  warning {step}: {text.splitlines()[0] if text else ''}"
        return None
    kind = event.event_type
    if kind == dg.DagsterEventType.STEP_SUCCESS:
        return f"  done    {step} ({event.step_success_data.duration_ms / 1000:.1f}s)"
    if kind == dg.DagsterEventType.STEP_FAILURE:
        return f"  FAILED  {step_error(event).line()}"
    if kind == dg.DagsterEventType.STEP_UP_FOR_RETRY:
        return f"  retry   {step}: {event.message or ''}".rstrip()
    if kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        check = event.asset_check_evaluation_data
        if not check.passed:
            return (
                f"  check   {check.asset_key.to_user_string()}:{check.check_name} did not pass "
                f"({check.severity.value})"
            )
    return None


def _loggers(path: Path, verbose: bool) -> tuple[dict[str, dg.LoggerDefinition], logging.Handler]:
    """`console` (one line per step, or Dagster's own at DEBUG with --verbose) and `file` (all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(message)s"))

    @dg.logger
    def file_logger(_context) -> logging.Logger:
        logger = logging.Logger(
            "recsys.run.file", logging.DEBUG
        )  # per run: not in logging's registry
        logger.addHandler(file_handler)
        return logger

    @dg.logger
    def steps_logger(_context) -> logging.Logger:
        logger = logging.Logger("recsys.run.console", logging.DEBUG)  # per run, as above
        logger.addHandler(_StepLines(sys.stderr))
        return logger

    console = dg.colored_console_logger if verbose else steps_logger
    return {"console": console, "file": file_logger}, file_handler


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class SelectionError(ValueError):
    """--select names an asset the job does not have; `names` are the ones it has."""

    def __init__(self, message: str, names: Sequence[str]) -> None:
        super().__init__(message)
        self.names = list(names)


def _check_selection(
    job_name: str, asset_keys: Sequence[dg.AssetKey], known: Iterable[dg.AssetKey]
) -> None:
    """Refuse unknown names before any run, with the closest valid name for each typo."""
    import difflib

    names = sorted(k.to_user_string() for k in known)
    unknown = [k.to_user_string() for k in asset_keys if k.to_user_string() not in names]
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise SelectionError(f"no asset named {', '.join(parts)} in {job_name}", names)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    errors: list[StepError]
    log_path: Path
    alert_id: int | None


def _job_origin(job_name: str):
    """Where the UI finds this job: the code location `dagster dev`/`make ui` and the e2e stack
    load (`-m recsys_assets`, pyproject's code_location_name), repository `__repository__`.

    A run carrying it is listed on the job's Runs tab (filtered by the `.dagster/repository` tag
    this origin adds), in the Overview timeline, and can be re-executed from the UI.
    """
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=CODE_LOCATION,
            working_directory=str(Path.cwd()),
        ),
        location_name=CODE_LOCATION,
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def _execute_as_job(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    run_id: str,
    run_config: dict,
    tags: dict[str, str],
    asset_keys: Sequence[dg.AssetKey] | None,
) -> dg.JobExecutionResult:
    """Run `job` (or its asset subset) in this process as a run OF THAT JOB in the code location.

    `execute_in_process` records runs without a code-location origin, which the UI leaves out of
    the job's Runs tab and the timeline; this creates the run with the origin, then executes it.
    """
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import create_execution_plan, execute_run

    selection = frozenset(asset_keys) if asset_keys else None
    target = job.get_subset(asset_selection=selection) if selection else job
    plan = create_execution_plan(target, run_config=run_config, instance_ref=instance.get_ref())
    with _storage_unsynced(instance, run_id):  # the run's creation and planned-asset events too
        run = instance.create_run_for_job(
            job_def=target,
            execution_plan=plan,
            run_id=run_id,
            run_config=run_config,
            tags={**job.run_tags, **tags},
            asset_selection=selection,
            remote_job_origin=_job_origin(job.name),
        )
        return execute_run(InMemoryJob(job), run, instance)


@contextlib.contextmanager
def _storage_unsynced(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    """While the run is created and executes, its SQLite storage (the run's event log shard, the
    cross-run index and the runs table) commits without waiting for the disk (`synchronous=NORMAL`:
    WAL databases stay consistent, a crash of the process loses nothing, a crash of the machine
    the last events) and is not checkpointed at every close (`held_open`). The run's shard is
    created with `synchronous=OFF` (as open_instance creates the first storage): ~90 fsyncs of a
    schema nobody has written to yet, 0.05-0.35 s of every rebuild's start.

    Dagster opens, commits and closes a connection per event: ~1,450 fsyncs of a small rebuild
    (3-4 ms each here), most of its events' cost. Other storages (PostgreSQL) are left as they are.
    """
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
        INDEX_SHARD_NAME,
        SqliteEventLogStorage,
    )
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    from recsys_assets.sqlite_sync import held_open, sqlite_synchronous

    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        yield
        return
    index, shard = (Path(storage.path_for_shard(s)) for s in (INDEX_SHARD_NAME, run_id))
    new_shard = [] if shard.exists() else [shard]
    with sqlite_synchronous(new_shard, "OFF"), storage.run_connection(run_id):
        pass  # creates the run's shard (a WAL database) now
    files = [index, shard]
    # Dagster's SQLite layout: history/runs.db beside the event log's history/runs/.
    runs_db = index.parent.with_suffix(".db")
    if isinstance(instance.run_storage, SqliteRunStorage) and runs_db.exists():
        files.append(runs_db)
    with sqlite_synchronous(files, "NORMAL"), held_open(files):
        yield


def materialize(
    settings: Settings,
    instance: dg.DagsterInstance,
    asset_keys: Sequence[dg.AssetKey] | None,
    verbose: bool = False,
    job_name: str = "rebuild_job",
) -> RunOutcome:
    """Execute `job_name` in this process; a failed run is alerted before this returns."""
    from recsys_assets.definitions import build_defs

    job = build_defs(settings).resolve_job_def(job_name)
    if asset_keys:
        _check_selection(job_name, asset_keys, job.asset_layer.selected_asset_keys)
    run_id = make_new_run_id()
    path = log_path(settings, run_id)
    loggers, file_handler = _loggers(path, verbose)
    marker = RunMarker.for_this_process(run_id, settings.dagster_home)
    marker.write(settings.home)
    try:
        console = {"config": {"log_level": "DEBUG"}} if verbose else {}
        result = _execute_as_job(
            job.with_logger_defs(loggers),
            instance,
            run_id,
            run_config={"loggers": {"console": console, "file": {}}},
            tags={LAUNCHED_BY_TAG: "cli", PID_TAG: str(marker.pid), HOST_TAG: marker.host},
            asset_keys=asset_keys,
        )
        errors: list[StepError] = []
        alert_id = None
        failed_run = None if result.success else instance.get_run_by_id(run_id)
        if failed_run is not None:
            errors = run_errors(instance, run_id)
            alert_id = _alert(instance, settings, failed_run)
        return RunOutcome(run_id, result.success, errors, path, alert_id)
    finally:
        file_handler.close()
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            marker.remove(settings.home)
        # else (an exception escaped the run): the marker stays, and once this process is gone
        # the next CLI start marks the run failed and alerts it.
