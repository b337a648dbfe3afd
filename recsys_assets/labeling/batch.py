"""Labeling through the OpenAI Batch API: half the price, answers within the completion window.

Each request line is the body the online path would POST (LLMLabeler.request_body), so the answer
lands in the ledger under the same fingerprint and is shared with online runs. What makes it safe
to kill at any moment is the order of writes, each committed before the next step:

1. `batches` row `pending` plus the input keys of every request (custom_id), before the upload;
2. `uploaded` with the file id; the batch is created with metadata ``recsys_batch_key``;
3. `submitted` with the batch id; then polled;
4. the output file's answers (one transaction), then the error file's failures, then `closed`.

A rerun picks the batch up where the ledger left it: `pending` (never uploaded, or its file id
lost) is abandoned, since no batch was created from it; `uploaded` first looks for a batch carrying
its key (created, but the id never recorded) before creating one; `submitted` is polled again. A
key in an open batch is never put in another one, so no row is submitted twice. Rows in the error
file, or unfinished when a batch expired, failed or was cancelled, go into a new batch, at most
`max_rounds` times per run; what still has no answer is recorded `failed` (a later run retries it).

One batch run per fingerprint at a time: a second concurrent run would abandon the first's
`pending` batch. Knows nothing of Dagster or the CLI; the client and the ledger are arguments.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recsys_assets import taxonomy
from recsys_assets.labeling.engine import EngineStats, LabelingAborted, PendingRow, call_items
from recsys_assets.labeling.ledger import FINAL_STATUSES, BatchRecord, Ledger, LedgerRecord
from recsys_assets.labeling.llm import (
    FatalError,
    LLMError,
    LLMLabeler,
    LLMOptions,
    RetryableError,
    classify_error,
    scrub,
)

ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "expired", "cancelled", "failed")
METADATA_KEY = "recsys_batch_key"


@dataclass(frozen=True)
class BatchConfig:
    poll_s: float = 30.0  # between two looks at a running batch
    completion_window: str = "24h"
    max_rounds: int = 3  # batches per run for rows that failed or were left unfinished
    max_requests: int = 50_000  # the Batch API's limit per batch
    max_attempts: int = 6  # consecutive transport failures before the run stops (resumable)


def openai_client(options: LLMOptions) -> Any:
    """The official client with the online path's base URL, key and timeout; no client retries
    (a retried create could start a second batch; this module retries, after looking first)."""
    import openai

    return openai.OpenAI(
        api_key=options.api_key or "missing-key",
        base_url=options.base_url,
        timeout=options.effective_timeout_s(),
        max_retries=0,
    )


def custom_id(fp: str, keys: Sequence[str]) -> str:
    """Deterministic per request content: the same rows always carry the same custom_id."""
    return "r-" + hashlib.sha256((fp + "|" + "|".join(keys)).encode()).hexdigest()[:32]


class BatchRunner:
    """Label rows through the Batch API; every step is recorded in the ledger first."""

    def __init__(
        self,
        client: Any,
        ledger: Ledger,
        fp: str,
        labeler: LLMLabeler,
        config: BatchConfig,
        *,
        on_progress: Callable[[int, EngineStats], None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.fp = fp
        self.labeler = labeler
        self.options = labeler.options
        self.cfg = config
        self.on_progress = on_progress
        self.on_status = on_status
        self.stats = EngineStats()
        self._bodies: dict[str, bytes] = {}  # batch_key -> JSONL, for this run's own batches
        self._rows: dict[str, PendingRow] = {}
        self._failures = 0
        self._stop = threading.Event()

    # -- public ------------------------------------------------------------------------------
    def run(self, rows: Sequence[PendingRow], stop: threading.Event | None = None) -> EngineStats:
        stop = self._stop = stop or threading.Event()
        self._rows = {r.key: r for r in rows}
        rounds = 0
        try:
            while not stop.is_set():
                if not self._drive_open(stop):
                    break  # stopped while a batch runs: it is resumed next time
                todo = self._todo()
                if not todo or rounds >= self.cfg.max_rounds:
                    break
                rounds += 1
                self._begin(todo)
        except FatalError as exc:
            self.stats.aborted = LabelingAborted(exc.reason, scrub(str(exc), self.labeler.secrets))
        self._finish(stop)
        return self.stats

    # -- submitting --------------------------------------------------------------------------
    def _todo(self) -> list[PendingRow]:
        """Rows with no final answer that no open batch carries."""
        found = self.ledger.lookup(self.fp, list(self._rows))
        busy = self.ledger.in_open_batches(self.fp)
        return [
            r
            for k, r in self._rows.items()
            if k not in busy and (k not in found or found[k].status not in FINAL_STATUSES)
        ]

    def _begin(self, todo: list[PendingRow]) -> None:
        """Write the `pending` batches (and their rows) before anything is uploaded."""
        n = self.options.items_per_call
        units = [todo[i : i + n] for i in range(0, len(todo), n)]
        for start in range(0, len(units), self.cfg.max_requests):
            requests: dict[str, list[str]] = {}
            lines = []
            for unit in units[start : start + self.cfg.max_requests]:
                keys = [r.key for r in unit]
                cid = custom_id(self.fp, keys)
                requests[cid] = keys
                body = self.labeler.request_body(call_items(unit))
                line = {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body}
                lines.append(json.dumps(line, ensure_ascii=False))
            key = uuid.uuid4().hex
            if self.ledger.batch_begin(self.fp, key, requests):
                self._bodies[key] = ("\n".join(lines) + "\n").encode("utf-8")

    def _drive_open(self, stop: threading.Event) -> bool:
        """Advance every open batch until all are closed (True) or `stop` is set (False)."""
        while True:
            open_ = self.ledger.open_batches(self.fp)
            if not open_:
                return True
            running = False
            for b in open_:
                if stop.is_set():
                    return False
                running |= self._step(b)
            if running and stop.wait(self.cfg.poll_s):
                return False

    def _step(self, b: BatchRecord) -> bool:
        """One move of one batch; True when it is still running at the provider."""
        try:
            if b.state == "pending":
                self._upload(b)
            elif b.state == "uploaded":
                self._create(b)
            else:
                return self._poll(b)
            self._failures = 0
        except LLMError as exc:
            self._transport_failure(exc)
            return True
        return False

    def _upload(self, b: BatchRecord) -> None:
        data = self._bodies.get(b.batch_key)
        if data is None:  # a run that stopped before recording the upload: no batch came of it
            self.ledger.batch_update(
                b.batch_key, state="abandoned", note="never created (the run stopped first)"
            )
            return
        self._status(f"uploading {b.requests:,} requests")
        f = self._call(
            self.client.files.create,
            file=(f"recsys-{b.batch_key}.jsonl", data),
            purpose="batch",
        )
        self.ledger.batch_update(b.batch_key, state="uploaded", input_file_id=f.id)

    def _create(self, b: BatchRecord) -> None:
        found = self._find(b)
        if found is None:
            self._status(f"creating a batch of {b.requests:,} requests")
            found = self._call(
                self.client.batches.create,
                input_file_id=b.input_file_id,
                endpoint=ENDPOINT,
                completion_window=self.cfg.completion_window,
                metadata={METADATA_KEY: b.batch_key},
            )
        self.ledger.batch_update(
            b.batch_key, state="submitted", batch_id=found.id, provider_status=found.status
        )

    def _find(self, b: BatchRecord) -> Any:
        """The provider's batch made from this record (created, but its id never recorded)."""
        since = datetime.fromisoformat(b.created_at).timestamp() - 300
        for item in self._call(self.client.batches.list, limit=100):
            if (item.metadata or {}).get(METADATA_KEY) == b.batch_key:
                return item
            if item.created_at < since:  # newest first: older ones cannot be ours
                return None
        return None

    def _poll(self, b: BatchRecord) -> bool:
        remote = self._call(self.client.batches.retrieve, b.batch_id)
        counts = remote.request_counts
        done = f"{counts.completed + counts.failed:,}/{counts.total:,}" if counts else "?"
        self._status(f"batch {b.batch_id}: {remote.status} ({done})")
        if remote.status not in TERMINAL:
            if remote.status != b.provider_status:
                self.ledger.batch_update(b.batch_key, provider_status=remote.status)
            return True
        self._collect(b, remote)
        return False

    # -- results -----------------------------------------------------------------------------
    def _collect(self, b: BatchRecord, remote: Any) -> None:
        """Record the output file's answers, then the error file's failures, then close."""
        requests = self.ledger.batch_requests(b.batch_key)
        self.ledger.batch_update(
            b.batch_key,
            provider_status=remote.status,
            output_file_id=remote.output_file_id,
            error_file_id=remote.error_file_id,
        )
        if remote.output_file_id and not b.output_recorded:
            self._record(self._lines(remote.output_file_id), requests)
            self.ledger.batch_update(b.batch_key, output_recorded=1)
        if remote.error_file_id:
            self._record(self._lines(remote.error_file_id), requests)
        note = None
        if remote.status != "completed":
            errors = getattr(getattr(remote, "errors", None), "data", None) or []
            why = "; ".join(str(getattr(e, "message", e)) for e in errors)[:300]
            why = scrub(why, self.labeler.secrets)
            note = f"{remote.status}{': ' + why if why else ''} (unfinished rows go again)"
        self.ledger.batch_update(b.batch_key, state="closed", note=note)

    def _lines(self, file_id: str) -> list[dict[str, Any]]:
        self._status(f"downloading {file_id}")
        text = self._call(self.client.files.content, file_id).text
        return [json.loads(x) for x in text.splitlines() if x.strip()]

    def _record(self, lines: list[dict[str, Any]], requests: dict[str, list[str]]) -> None:
        """One transaction for the answers (or failures) of a file."""
        records: list[LedgerRecord] = []
        for line in lines:
            keys = requests.get(str(line.get("custom_id")))
            if not keys:
                continue  # not a request of this batch
            rows = [self._rows.get(k) or PendingRow(k, "", "", None) for k in keys]
            response = line.get("response") or {}
            if response.get("status_code") == 200 and isinstance(response.get("body"), dict):
                records += self._answered(rows, response["body"])
            else:
                records += self._failed(rows, line)
        if records:
            self.ledger.record(
                self.fp,
                records,
                model=self.options.model,
                prompt_version=self.options.effective_prompt_version(),
            )
        self._progress(len(records))

    def _answered(self, rows: list[PendingRow], body: dict[str, Any]) -> list[LedgerRecord]:
        items = call_items(rows)
        answers, errors, reply = self.labeler.validate_completion(items, body)
        n = len(rows)
        tin, tout, cached = reply.tokens_in, reply.tokens_out, reply.tokens_cached
        cost = self.options.cost(tin, tout, cached, batch=True)
        s = self.stats
        s.http_calls += 1
        s.tokens_in, s.tokens_out, s.tokens_cached = (
            s.tokens_in + tin,
            s.tokens_out + tout,
            s.tokens_cached + cached,
        )
        s.cost_usd += cost
        common = {
            "tokens_in": tin // n,
            "tokens_out": tout // n,
            "tokens_cached": cached // n,
            "cost_usd": cost / n,
            "raw_response": reply.text[:4000],
            "mode": "batch",
        }
        out = []
        for it, row in zip(items, rows, strict=True):
            if (a := answers.get(it.item_id)) is not None:
                s.ok += 1
                out.append(
                    LedgerRecord(row.key, "ok", a.industry, a.confidence, a.reason, **common)
                )
            else:
                s.invalid += 1
                s.failures_by_reason["invalid_answer"] += 1
                why = errors.get(it.item_id, "missing")
                out.append(
                    LedgerRecord(row.key, "invalid", taxonomy.OTHER, 0.0, error=why, **common)
                )
        return out

    def _failed(self, rows: list[PendingRow], line: dict[str, Any]) -> list[LedgerRecord]:
        response = line.get("response") or {}
        body = response.get("body") or {}
        err = line.get("error") or (body.get("error") if isinstance(body, dict) else None) or {}
        why = f"batch: HTTP {response.get('status_code')}: {str(err.get('message') or err)[:300]}"
        self.stats.failures_by_reason["batch_error"] += len(rows)
        return [
            LedgerRecord(r.key, "failed", error=scrub(why, self.labeler.secrets), mode="batch")
            for r in rows
        ]

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified: fatal stops, the rest is retried
            raise classify_error(exc, self.labeler.secrets) from None

    def _transport_failure(self, exc: LLMError) -> None:
        """A failed upload/create/poll: retried on the next pass; fatal errors and a long run of
        failures stop the run (the batches stay in the ledger, a rerun resumes them)."""
        if not isinstance(exc, RetryableError):
            raise FatalError(exc.reason, str(exc))
        self._failures += 1
        self.stats.failures_by_reason[exc.reason] += 1
        if self._failures >= self.cfg.max_attempts:
            raise FatalError(
                "circuit_open",
                f"the Batch API failed {self._failures} times in a row (last: {exc.reason}: "
                f"{scrub(str(exc), self.labeler.secrets)[:200]}). Submitted batches are kept in "
                "the ledger: rerun the same command to resume them, nothing is submitted twice.",
            )
        self._stop.wait(min(self.cfg.poll_s, 0.5 * 2 ** min(self._failures, 6)))

    def _status(self, text: str) -> None:
        if self.on_status:
            self.on_status(text)

    def _progress(self, n: int) -> None:
        if n and self.on_progress:
            self.on_progress(n, self.stats)

    def _finish(self, stop: threading.Event) -> None:
        """Settle the counts: rows answered, rows failed this run, rows still remaining."""
        found = self.ledger.lookup(self.fp, list(self._rows))
        busy = self.ledger.in_open_batches(self.fp)
        s = self.stats
        s.failed_keys = {k for k, v in found.items() if v.status == "failed" and k not in busy} & {
            k for k, v in found.items() if k in self._rows
        }
        s.failed = len(s.failed_keys)
        done = sum(1 for k, v in found.items() if v.status in FINAL_STATUSES)
        s.rows_done = done + s.failed
        s.rows_remaining = len(self._rows) - s.rows_done
        s.interrupted = stop.is_set() and s.rows_remaining > 0
        s.structured_output = f"{self.options.prompt_method()} (batch)"
