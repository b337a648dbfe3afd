"""The LLM labeling engine: concurrency, rate limiting, the one retry layer, breaker, interruption.

Threads with the sync client: the work is waiting on HTTP, so a ThreadPoolExecutor of
`max_concurrency` workers gets the throughput without an event loop. Each worker commits its call's
rows to the ledger the moment the call finishes, so a SIGKILL loses at most the calls in flight.

Several workers (threads of other processes, other machines) may label overlapping inputs at
once: each call first claims its keys in the ledger; keys a live peer holds are set aside and,
once this worker has nothing else to do, read back from the ledger (or taken over when the peer's
claim ends), so no key is paid for by two workers.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from recsys_assets import taxonomy
from recsys_assets.config import LLMSettings
from recsys_assets.labeling.ledger import FINAL_STATUSES, Ledger, LedgerRecord, utcnow
from recsys_assets.labeling.llm import (
    CallFailedError,
    FatalError,
    LabelItem,
    LLMError,
    LLMLabeler,
    RetryableError,
    estimate_cost,
    scrub,
)


@dataclass(frozen=True)
class EngineConfig:
    max_concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    items_per_call: int = 1
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    breaker_threshold: int = 20

    @classmethod
    def from_settings(cls, llm: LLMSettings, **overrides: object) -> EngineConfig:
        """The engine's limits from settings.llm; non-None overrides (CLI flags) win."""
        values: dict[str, object] = {
            "max_concurrency": llm.max_concurrency,
            "rpm": llm.rpm,
            "tpm": llm.tpm,
            "items_per_call": llm.items_per_call,
            "max_attempts": llm.max_attempts,
            "backoff_base_s": llm.backoff_base_s,
            "backoff_max_s": llm.backoff_max_s,
            "breaker_threshold": llm.breaker_threshold,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)  # type: ignore[arg-type]
        if cfg.max_concurrency < 1 or cfg.items_per_call < 1 or cfg.max_attempts < 1:
            raise ValueError("max_concurrency, items_per_call and max_attempts must be >= 1")
        return cfg


class RateLimiter:
    """Requests- and tokens-per-minute buckets that reserve a call's whole charge before it is
    sent, the way a provider's limiter admits it: one request, and the prompt's estimated tokens
    plus max_tokens (OpenAI-compatible limiters reserve max_tokens at admission, whatever the
    answer then uses). Admissions therefore never run ahead of the configured limits; `settle`
    then replaces the reservation by what the provider counted.

    Reservations are first come, first served: a call takes its tokens at once (the level may go
    below zero) and sleeps until the refill has covered them, so no waiting call is overtaken.
    The buckets hold half a second of refill: a provider's limiter holds about a second, and the
    other half absorbs the time a call takes from admission here to admission there. A call
    larger than a bucket waits for a full bucket and leaves it in debt."""

    BURST_S = 0.5

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self._lock = threading.Lock()
        now = time.monotonic()
        self._buckets: dict[str, list[float]] = {}
        for name, per_min in (("req", rpm), ("tok", tpm)):
            if per_min:
                cap = max(1.0, per_min / 60.0 * self.BURST_S)
                self._buckets[name] = [cap, cap, per_min / 60.0, now]  # level, cap, rate/s, t

    def _refill(self, now: float) -> None:
        for b in self._buckets.values():
            b[0] = min(b[1], b[0] + (now - b[3]) * b[2])
            b[3] = now

    def acquire(self, tokens: int, stop: threading.Event) -> bool:
        """Reserve one request of `tokens` and block until the buckets cover it; False (and the
        reservation returned) if `stop` is set first."""
        if not self._buckets:
            return not stop.is_set()
        need = {"req": 1.0, "tok": float(tokens)}
        with self._lock:
            self._refill(time.monotonic())
            short = [(min(need[k], b[1]) - b[0]) / b[2] for k, b in self._buckets.items()]
            for k, b in self._buckets.items():
                b[0] -= need[k]
        stopped = stop.wait(max(short)) if max(short) > 0 else stop.is_set()
        if stopped:
            self.settle(tokens, 0, extra_requests=-1)
        return not stopped

    def settle(self, reserved: int, charged: int, extra_requests: int = 0) -> None:
        """Replace a call's reservation of `reserved` tokens by the `charged` ones (what the
        provider counted for it), plus any further requests the call made (a re-ask)."""
        with self._lock:
            if "tok" in self._buckets:
                self._buckets["tok"][0] -= charged - reserved
            if "req" in self._buckets:
                self._buckets["req"][0] -= extra_requests


class LabelingAborted(RuntimeError):
    """The run stopped early (a fatal provider error or the circuit breaker); progress is kept in
    the ledger. The one class for this: the engine records it, the service raises it with
    `frame` (the rows finished before the stop), `report` and `positions` (their row numbers)."""

    def __init__(
        self,
        reason: str,
        message: str,
        frame: Any = None,
        report: Any = None,
        positions: list[int] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.frame = frame
        self.report = report
        if positions is None and frame is not None:
            positions = list(range(len(frame)))
        self.positions = positions


@dataclass
class EngineStats:
    http_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in: served from the provider's prompt cache
    cost_usd: float = 0.0
    ok: int = 0
    invalid: int = 0
    failed: int = 0
    failures_by_reason: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    rows_done: int = 0
    rows_remaining: int = 0
    failed_keys: set[str] = field(default_factory=set)
    interrupted: bool = False
    aborted: LabelingAborted | None = None
    # keys a concurrent worker answered while this run waited for them (not paid for here)
    peer_keys: set[str] = field(default_factory=set)
    waited_for_peers_s: float = 0.0
    # the structured-output method the server accepted, e.g. "tool (auto; refused: json_schema...)"
    structured_output: str | None = None


@dataclass(frozen=True)
class PendingRow:
    key: str
    name: str
    menu: str
    description: str | None


def call_items(unit: Sequence[PendingRow]) -> list[LabelItem]:
    """The items of one call, ids r1..rn (short ids the model copies back reliably)."""
    return [LabelItem(f"r{i + 1}", r.name, r.menu, r.description) for i, r in enumerate(unit)]


class Engine:
    def __init__(
        self,
        labeler: LLMLabeler,
        ledger: Ledger,
        fingerprint: str,
        config: EngineConfig,
        *,
        on_progress: Callable[[int, EngineStats], None] | None = None,
    ) -> None:
        self.labeler = labeler
        self.ledger = ledger
        self.fp = fingerprint
        self.cfg = config
        self.on_progress = on_progress
        self.limiter = RateLimiter(config.rpm, config.tpm)
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._halt = threading.Event()  # fatal error or breaker: stop everything
        self._consecutive_failures = 0
        self._model = labeler.options.model
        self._prices = labeler.options.prices
        self._prompt_version = labeler.options.effective_prompt_version()

    # -- public ------------------------------------------------------------------------------
    POLL_MIN_S = 0.05  # first look at keys held by a peer; then x1.5 up to POLL_MAX_S
    POLL_MAX_S = 2.0

    def run(self, rows: Sequence[PendingRow], stop: threading.Event | None = None) -> EngineStats:
        stop = stop or threading.Event()
        n = self.cfg.items_per_call
        units: deque[tuple[list[PendingRow], bool]] = deque(
            (list(rows[i : i + n]), False) for i in range(0, len(rows), n)
        )
        futures: dict[Future, list[PendingRow]] = {}
        self._deferred: dict[str, PendingRow] = {}  # keys a live peer holds
        self._started_at = utcnow()
        poll, next_poll, wait_t0 = self.POLL_MIN_S, 0.0, None
        if rows and not self._preflight():
            self.stats.rows_remaining = len(rows)
            return self.stats
        pool = ThreadPoolExecutor(self.cfg.max_concurrency, thread_name_prefix="llm-label")
        try:
            while units or futures or self._deferred:
                while (
                    units
                    and len(futures) < self._in_flight_limit()
                    and not stop.is_set()
                    and not self._halt.is_set()
                ):
                    unit, claimed = units.popleft()
                    futures[pool.submit(self._work, unit, stop, claimed)] = unit
                if futures:
                    done, _ = wait(list(futures), timeout=0.2, return_when=FIRST_COMPLETED)
                    for fut in done:
                        futures.pop(fut)
                        self._progress(fut.result())
                    continue
                if stop.is_set() or self._halt.is_set():
                    break  # stopped before dispatching the rest
                # Only keys held by peers are left: read their answers, take over ended claims.
                now = time.monotonic()
                wait_t0 = wait_t0 if wait_t0 is not None else now
                if now < next_poll:
                    stop.wait(next_poll - now)
                    continue
                mine = self._poll_deferred()
                for i in range(0, len(mine), n):
                    units.append((mine[i : i + n], True))
                next_poll, poll = time.monotonic() + poll, min(self.POLL_MAX_S, poll * 1.5)
        except BaseException:
            # A second Ctrl+C (KeyboardInterrupt) or a bug: do not wait for the calls in flight.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if wait_t0 is not None:
            self.stats.waited_for_peers_s = time.monotonic() - wait_t0
        self.stats.rows_remaining = len(rows) - self.stats.rows_done
        self.stats.interrupted = stop.is_set() and self.stats.rows_remaining > 0
        note = getattr(self.labeler, "method_note", None)
        self.stats.structured_output = note() if note else None
        return self.stats

    def _preflight(self) -> bool:
        """The labeler's checks before the first call (the model is served); False: aborted."""
        check = getattr(self.labeler, "preflight", None)
        try:
            if check:
                check()
        except FatalError as exc:
            self._abort(exc.reason, str(exc))
            return False
        return True

    def _in_flight_limit(self) -> int:
        """One call until the server has answered once: that call settles the structured-output
        method, and a refused request shape then costs one call, not max_concurrency."""
        return self.cfg.max_concurrency if getattr(self.labeler, "negotiated", True) else 1

    def _progress(self, finished: int) -> None:
        if finished and self.on_progress:
            self.on_progress(finished, self.stats)

    def _poll_deferred(self) -> list[PendingRow]:
        """Settle the keys peers held: their answers count as done here (a failure a peer recorded
        during this run is this run's failure too: retried next run, not paid twice now); keys
        whose claim ended are claimed and returned, to be called by this worker."""
        keys = list(self._deferred)
        found = self.ledger.lookup(self.fp, keys)
        settled = 0
        for k in keys:
            rec = found.get(k)
            if rec is None:
                continue
            if rec.status in FINAL_STATUSES:
                self.stats.peer_keys.add(k)
            elif rec.status == "failed" and rec.updated_at >= self._started_at:
                self.stats.failed += 1
                self.stats.failed_keys.add(k)
                self.stats.failures_by_reason["peer_failed"] += 1
            else:
                continue
            del self._deferred[k]
            settled += 1
        self.stats.rows_done += settled
        self._progress(settled)
        mine = self.ledger.claim(self.fp, list(self._deferred)) if self._deferred else set()
        return [self._deferred.pop(k) for k in list(self._deferred) if k in mine]

    # -- one unit (one call, its retries) ------------------------------------------------------
    def _work(self, unit: list[PendingRow], stop: threading.Event, claimed: bool = False) -> int:
        if not claimed:
            if stop.is_set() or self._halt.is_set():
                return 0
            held = self.ledger.claim(self.fp, [r.key for r in unit])
            if len(held) < len(unit):
                with self._lock:
                    for r in unit:
                        if r.key not in held:
                            self._deferred[r.key] = r
                unit = [r for r in unit if r.key in held]
                if not unit:
                    return 0
        finished = 0
        try:
            finished = self._call(unit, stop)
        finally:
            if not finished:  # stopped, aborted or a bug before recording: hand the keys back
                # the lease ends on its own; never hide the first error behind a failed release
                with contextlib.suppress(Exception):
                    self.ledger.release(self.fp, [r.key for r in unit])
        return finished

    def _call(self, unit: list[PendingRow], stop: threading.Event) -> int:
        items = call_items(unit)
        by_id = {it.item_id: row for it, row in zip(items, unit, strict=True)}
        est = self.labeler.request_tokens(items)  # reserved before each attempt
        attempt = 0
        renewed = time.monotonic()
        while True:
            if stop.is_set() or self._halt.is_set():
                return 0  # not recorded: these rows stay "remaining" and are sent next run
            if not self.limiter.acquire(est, stop):  # a refused or failed attempt stays charged
                return 0
            if time.monotonic() - renewed > self.ledger.lease_seconds / 3:
                self.ledger.renew(self.fp, [r.key for r in unit])  # long retries keep the claim
                renewed = time.monotonic()
            attempt += 1
            try:
                res = self.labeler.label(items)
            except FatalError as exc:
                self._abort(exc.reason, str(exc))
                self._count_failure(exc.reason, http=1, exc=exc)
                return 0
            except CallFailedError as exc:
                self._count_failure(exc.reason, http=1, exc=exc)
                return self._record_failed(unit, exc, attempt)
            except RetryableError as exc:
                self._count_failure(exc.reason, http=1, exc=exc)
                if self._breaker_tripped(exc):
                    return 0
                if attempt >= self.cfg.max_attempts:
                    return self._record_failed(unit, exc, attempt)
                if stop.wait(self._backoff(attempt, exc.retry_after)):
                    return 0
                continue
            except Exception as exc:  # noqa: BLE001 - a bug or an unexpected client error: keep the run going
                err = RetryableError(
                    "unexpected", scrub(f"{type(exc).__name__}: {exc}", self.labeler.secrets)
                )
                self._count_failure(err.reason, http=1)
                if self._breaker_tripped(err) or attempt >= self.cfg.max_attempts:
                    return self._record_failed(unit, err, attempt) if not self._halt.is_set() else 0
                if stop.wait(self._backoff(attempt, None)):
                    return 0
                continue
            self.limiter.settle(est, self._charged(res, est), res.http_calls - 1)
            return self._record_result(unit, by_id, res, attempt)

    def _charged(self, res, est: int) -> int:
        """The tokens a provider's limiter counted for a call's requests: the prompts it reported
        (the estimate's when it reports none) plus max_tokens per request. Not the answer's own
        length: the limiter reserved max_tokens at admission, so refunding the unused part would
        let the engine run ahead of the provider (measured: 7-11 % of requests answered 429)."""
        per_request = self.labeler.max_tokens
        prompt = res.tokens_in or est - per_request
        return prompt + per_request * max(1, res.http_calls)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor, never shortened."""
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * (2 ** (attempt - 1)))
        jitter = random.uniform(0, cap)  # noqa: S311 - backoff jitter, not a secret
        if retry_after is not None:
            return min(
                max(retry_after, 0.0) + jitter * 0.1, max(self.cfg.backoff_max_s, retry_after)
            )
        return jitter

    def _record_result(
        self, unit: list[PendingRow], by_id: dict[str, PendingRow], res, attempt: int
    ) -> int:
        n = len(unit)
        cached = int(getattr(res, "tokens_cached", 0) or 0)
        cost = self._cost(res.tokens_in, res.tokens_out, cached)
        share_in, share_out = res.tokens_in // n, res.tokens_out // n
        records = []
        for item_id, row in by_id.items():
            common = {
                "input_key": row.key,
                "attempts": attempt + (1 if res.reasked else 0),
                "tokens_in": share_in,
                "tokens_out": share_out,
                "tokens_cached": cached // n,
                "cost_usd": cost / n,
                "latency_ms": res.latency_ms,
                "raw_response": res.raw,
            }
            if item_id in res.answers:
                a = res.answers[item_id]
                records.append(
                    LedgerRecord(
                        status="ok",
                        industry=a.industry,
                        confidence=a.confidence,
                        reason=a.reason,
                        **common,
                    )
                )
            else:
                records.append(
                    LedgerRecord(
                        status="invalid",
                        industry=taxonomy.OTHER,
                        confidence=0.0,
                        error=res.invalid.get(item_id, "missing"),
                        **common,
                    )
                )
        self.ledger.record(self.fp, records, model=self._model, prompt_version=self._prompt_version)
        with self._lock:
            self._consecutive_failures = 0
            s = self.stats
            s.http_calls += res.http_calls
            s.tokens_in += res.tokens_in
            s.tokens_out += res.tokens_out
            s.tokens_cached += cached
            s.cost_usd += cost
            s.latencies_ms.append(res.latency_ms)
            n_invalid = sum(1 for r in records if r.status == "invalid")
            s.ok += n - n_invalid
            s.invalid += n_invalid
            if n_invalid:
                s.failures_by_reason["invalid_answer"] += n_invalid
            s.rows_done += n
        return n

    def _cost(self, tokens_in: int, tokens_out: int, tokens_cached: int = 0) -> float:
        """At the options' prices (cached input at its price), or the table's for a stand-in."""
        cost = getattr(self.labeler.options, "cost", None)
        if cost is not None:
            return float(cost(tokens_in, tokens_out, tokens_cached))
        return estimate_cost(self._model, tokens_in, tokens_out, self._prices)

    def _record_failed(self, unit: list[PendingRow], exc: LLMError, attempt: int) -> int:
        msg = scrub(str(exc), self.labeler.secrets)[:500]
        records = [
            LedgerRecord(
                input_key=r.key, status="failed", error=f"{exc.reason}: {msg}", attempts=attempt
            )
            for r in unit
        ]
        self.ledger.record(self.fp, records, model=self._model, prompt_version=self._prompt_version)
        with self._lock:
            self.stats.failed += len(unit)
            self.stats.failed_keys.update(r.key for r in unit)
            self.stats.failures_by_reason[f"exhausted:{exc.reason}"] += len(unit)
            self.stats.rows_done += len(unit)
        return len(unit)

    def _count_failure(self, reason: str, http: int, exc: BaseException | None = None) -> None:
        spent_calls, spent_in, spent_out = getattr(exc, "spent", (0, 0, 0))
        with self._lock:
            self.stats.http_calls += http + spent_calls
            self.stats.tokens_in += spent_in
            self.stats.tokens_out += spent_out
            self.stats.cost_usd += estimate_cost(self._model, spent_in, spent_out, self._prices)
            self.stats.failures_by_reason[reason] += 1

    def _breaker_tripped(self, exc: LLMError) -> bool:
        with self._lock:
            self._consecutive_failures += 1
            tripped = self._consecutive_failures >= self.cfg.breaker_threshold
        if tripped:
            self._abort(
                "circuit_open",
                f"stopped after {self.cfg.breaker_threshold} consecutive failed calls "
                f"(last: {exc.reason}: {scrub(str(exc), self.labeler.secrets)[:200]}). "
                "Every finished row is saved in the ledger; fix the cause (endpoint, limits) and "
                "rerun the same command to resume.",
            )
        return tripped

    def _abort(self, reason: str, message: str) -> None:
        with self._lock:
            if self.stats.aborted is None:
                self.stats.aborted = LabelingAborted(reason, scrub(message, self.labeler.secrets))
        self._halt.set()
