"""What a failed run says: the real cause of each failed step, and the one alert for the run.

The failure sensor (daemon and UI runs), the CLI (its own in-process runs) and the crash check
(runs whose process died) all describe a failed run with `failed_run_alert`, so an operator reads
the same text whichever way the run was launched.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from recsys_assets.alerts import SYSTEM_FAILURE, Alert
from recsys_assets.orchestration.jobs import LAUNCHED_BY_TAG

MAX_MESSAGE_CHARS = 600
# Dagster wraps the error raised in an asset (and `retries.retry_only_on` wraps it once more in
# a dg.Failure); what an operator needs is the first error that is not one of these wrappers.
_FRAMEWORK_PREFIX = "dagster."


@dataclass(frozen=True)
class StepError:
    step_key: str | None
    error_class: str | None
    message: str

    def line(self) -> str:
        cause = f"{self.error_class}: {self.message}" if self.error_class else self.message
        return f"{self.step_key}: {cause}" if self.step_key else cause


def _qualified_name(error: SerializableErrorInfo) -> str:
    head = (error.message or "").split(":", 1)[0].strip()
    return head if head and " " not in head else ""


def root_cause(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """The outermost error in the `cause` chain that is not a Dagster wrapper, else the deepest.

    Outermost, because a domain error raised `from` a library error (an IngestError from a
    DuckDB error) names the file and the problem; the library error alone does not.
    """
    chain = [error]
    while chain[-1].cause is not None:
        chain.append(chain[-1].cause)
    for candidate in chain:
        if not _qualified_name(candidate).startswith(_FRAMEWORK_PREFIX):
            return candidate
    return chain[-1]


def first_line(error: SerializableErrorInfo) -> str:
    """The error's message without the `module.Class: ` prefix, first line, bounded."""
    text = (error.message or "").strip()
    qualified = _qualified_name(error)
    if qualified and error.cls_name and qualified.endswith(error.cls_name):
        text = text[len(qualified) + 1 :].strip()
    line = text.splitlines()[0] if text else (error.cls_name or "error")
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def step_error(event: dg.DagsterEvent) -> StepError:
    """The cause of a STEP_FAILURE event, as one line."""
    error = _event_error(event)
    if error is None:
        return StepError(event.step_key, None, event.message or "step failed")
    cause = root_cause(error)
    return StepError(event.step_key, cause.cls_name, first_line(cause))


def step_errors(instance: dg.DagsterInstance, run_id: str) -> list[StepError]:
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    return [
        step_error(r.event_log_entry.dagster_event)
        for r in records
        if r.event_log_entry.dagster_event
    ]


def run_errors(instance: dg.DagsterInstance, run_id: str) -> list[StepError]:
    """Why a failed run failed: its failed steps, else the run-level failure."""
    return step_errors(instance, run_id) or [_run_failure(instance, run_id)]


def _event_error(event: dg.DagsterEvent) -> SerializableErrorInfo | None:
    """The error a failure event carries, if any. Not `event.job_failure_data`: a run failure the
    code server reports for a killed worker carries no JobFailureData, and that property is then
    None (an AttributeError here once cost the alert of a kill -9)."""
    error = getattr(event.event_specific_data, "error", None)
    return error if isinstance(error, SerializableErrorInfo) else None


def _run_failure(instance: dg.DagsterInstance, run_id: str) -> StepError:
    """The run-level failure (no step failed: a crash, a timeout, an error before any step)."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.RUN_FAILURE, ascending=False, limit=1
    ).records
    event = records[0].event_log_entry.dagster_event if records else None
    error = _event_error(event) if event else None
    if error is not None:
        cause = root_cause(error)
        return StepError(running_step(instance, run_id), cause.cls_name, first_line(cause))
    message = (
        _crash_explanation(instance, run_id) or (event.message if event else None) or "run failed"
    )
    return StepError(running_step(instance, run_id), None, message.strip().splitlines()[0])


def _crash_explanation(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """What the code server saw when a run worker died ("... was terminated by signal 9"): it
    reports the failure itself with only a generic message."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=False, limit=20
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        message = (event.message if event else None) or ""
        if "Run execution process for" in message:
            return message.removeprefix("[DagsterApiServer] ")
    return None


def running_step(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The step that had started but not finished when the run ended (where a crash hit)."""
    types = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_SKIPPED,
    }
    open_steps: dict[str, None] = {}
    for record in instance.get_records_for_run(run_id=run_id, of_type=types).records:
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            open_steps[event.step_key] = None
        else:
            open_steps.pop(event.step_key, None)
    return next(reversed(open_steps), None)


def remedy(run: dg.DagsterRun, log_path: str | None = None) -> str:
    # Runs of the `recsys` CLI carry the job's origin too (so the UI lists them under their job),
    # but whoever runs them from cron reruns the command.
    from_cli = run.tags.get(LAUNCHED_BY_TAG) == "cli"
    if run.remote_job_origin is not None and not from_cli:  # the UI, a schedule or a sensor
        return (
            f"Fix the cause, then re-execute from failure: Dagster UI → Runs → {run.run_id} → "
            "'Re-execute from failure' (finished steps and paid LLM calls are not repeated)."
        )
    log = f" Full log: {log_path}." if log_path else ""
    return (
        "Fix the cause, then run `recsys materialize` again (paid LLM calls are in the ledger "
        f"and are not repeated).{log}"
    )


def failed_run_alert(
    instance: dg.DagsterInstance, run: dg.DagsterRun, log_path: str | None = None
) -> Alert:
    """The alert for a failed run: the first failed step and its real cause. Reading the cause
    from the event log must never cost the alert itself: if that fails, the run is still alerted,
    with the reason its cause could not be read."""
    try:
        errors = run_errors(instance, run.run_id)
    except Exception as exc:  # noqa: BLE001 - an alert is never lost to a bug in reading its cause
        errors = [
            StepError(
                None, None, f"run failed (its cause could not be read: {type(exc).__name__}: {exc})"
            )
        ]
    first = errors[0]
    message = first.message
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more failed step(s): {', '.join(str(e.step_key) for e in errors[1:])})"
    return Alert(
        kind=SYSTEM_FAILURE,
        message=message,
        run_id=run.run_id,
        job_name=run.job_name,
        step_key=first.step_key,
        error_class=first.error_class,
        remedy=remedy(run, log_path),
    )
