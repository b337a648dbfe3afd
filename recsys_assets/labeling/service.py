"""The one entry point for labeling restaurants with an industry (Dagster asset and `recsys label`).

Labelers:
* ``offline``: the lexicon labeler; free, deterministic, no ledger (nothing to pay for twice).
* ``llm`` (deprecated alias ``openai``): the LLM through the checkpointed engine; every answer is kept in the ledger.
* ``cascade``: offline answers where it is sure (margin >= RECSYS_CASCADE_MARGIN), the LLM the rest;
  an answer that disagrees with the lexicon is used only where the routing file trusts that model
  (``cascade.use_llm``), else the offline label is kept (source ``cascade_offline``).

Output ``source`` vocabulary (fixed): ``offline``, ``llm``, ``cascade_offline``, ``cascade_llm``, and
``override`` (a human correction, applied around labeling by labeling/overrides.py).
A row answered from the ledger keeps its LLM source (the answer *is* an LLM answer); the report's
``reused_from_ledger`` says how many were not paid for in this run.

``label_status`` (fixed): ``ok``; ``invalid`` (the model answered, outside the schema or taxonomy,
even after one re-ask: final, never sent again); ``unanswered`` (no answer from the model: timeouts,
connection errors, retries exhausted; kept as ``failed`` in the ledger and retried by the next run).
Both non-ok statuses are ``flagged`` with industry ``other`` and confidence 0.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from recsys_assets import taxonomy
from recsys_assets.config import ConfigError, Settings, load_settings, normalize_labeler
from recsys_assets.labeling.engine import LabelingAborted  # the one class; re-exported

SOURCES = ("offline", "llm", "cascade_offline", "cascade_llm")
OUTPUT_COLUMNS = (
    "restaurant_id",
    "industry",
    "confidence",
    "source",
    "labeled_at",
    "flagged",
    "label_status",
)
LABEL_STATUSES = ("ok", "invalid", "unanswered")
REQUIRED_COLUMNS = ("restaurant_id", "name", "menu")


@dataclass
class LabelingReport:
    labeler: str
    total: int
    labeled_this_run: int = 0
    reused_from_ledger: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in: served from the provider's prompt cache
    estimated_cost_usd: float = 0.0
    invalid: int = 0
    failed: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    label_distribution: dict[str, int] = field(default_factory=dict)
    offline_answered: int = 0
    interrupted: bool = False
    remaining: int = 0
    model: str | None = None
    fingerprint: str | None = None
    # How the answers' JSON shape was requested, e.g. "tool (auto; refused: json_schema: ...)".
    structured_output: str | None = None
    cascade_rule: str | None = None  # the routing rule the cascade applied (cascade.Rule.describe)
    cascade_kept_offline: int = 0  # rows the LLM answered but the offline label was kept
    mode: str = "online"  # online | batch (the Batch API, at its price)

    @property
    def done(self) -> int:
        return self.total - self.remaining

    def resume_message(self) -> str:
        return f"{self.done} labeled, {self.remaining} remaining — rerun the same command to resume"

    def as_metadata(self) -> dict[str, Any]:
        """Flat and JSON-safe (Dagster metadata, logs). Holds no secret: the key is never stored."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if isinstance(v, dict):
                prefix = "failures" if k == "failures_by_reason" else "labels"
                for kk, vv in sorted(v.items()):
                    out[f"{prefix}.{kk}"] = int(vv)
            elif isinstance(v, float):
                out[k] = round(v, 6)
            else:
                out[k] = v
        return out


def _clean(series: pd.Series) -> list[str | None]:
    return [
        None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v)
        for v in series.astype(object).tolist()
    ]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    idx = min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))
    return round(s[idx], 2)


def label_frame(
    df: pd.DataFrame,
    *,
    labeler: str | None = None,
    settings: Settings | None = None,
    progress: bool = False,
    stop_event: threading.Event | None = None,
    llm_options: Any | None = None,
    engine_config: Any | None = None,
    cascade_margin: float | None = None,
    mode: str | None = None,
) -> tuple[pd.DataFrame, LabelingReport]:
    """Label every row; output in input order. Interrupted -> the rows not done are absent.

    `llm_options` (llm.LLMOptions) and `engine_config` (engine.EngineConfig) default to
    `settings.llm`; they exist for tests and the benchmark. `mode`: online (one call per request)
    or batch (the Batch API); None: settings.llm.mode.
    """
    settings = settings or load_settings()
    mode = _resolve_mode(mode, settings)
    kind = _resolve_kind(df, labeler, settings)
    ids = df["restaurant_id"]
    names, menus, descs = _texts(df)
    report = LabelingReport(labeler=kind, total=len(df), mode=mode)
    cols = _Columns.empty(len(df))
    now = pd.Timestamp.now(tz="UTC")

    preds, offline_rows, llm_rows = _route(kind, names, menus, descs, settings, cascade_margin)
    tag = "offline" if kind == "offline" else "cascade_offline"
    for i in offline_rows:
        p = preds[i]
        cols.industry[i], cols.confidence[i], cols.source[i], cols.labeled_at[i] = (
            p.industry,
            float(p.confidence),
            tag,
            now,
        )
    report.offline_answered = len(offline_rows)
    report.labeled_this_run = report.offline_answered
    routing = None
    if kind == "cascade":
        from recsys_assets.labeling import cascade

        routing = cascade.load_routing(settings.llm.cascade_routing)  # checked before any call

    if kind in ("llm", "cascade") and llm_rows:
        try:
            _label_with_llm(
                llm_rows,
                names,
                menus,
                descs,
                settings,
                report,
                cols,
                progress=progress,
                stop_event=stop_event,
                llm_options=llm_options,
                engine_config=engine_config,
                mode=mode,
            )
        except _Aborted as ab:
            _settle_llm_rows(kind, llm_rows, preds, routing, cols, report)
            frame = _finish(ids, cols, report)
            positions = [i for i, v in enumerate(cols.industry) if v is not None]
            raise LabelingAborted(
                ab.reason, f"{ab.message} ({report.resume_message()})", frame, report, positions
            ) from None
        _settle_llm_rows(kind, llm_rows, preds, routing, cols, report)

    frame = _finish(ids, cols, report)
    return frame, report


@dataclass
class _Columns:
    """The output columns being filled, one slot per input row. A row whose industry is still
    None was not reached (interrupted, or the circuit breaker): _finish leaves it out."""

    industry: list[str | None]
    confidence: list[float | None]
    source: list[str | None]
    labeled_at: list[Any]  # pd.Timestamp once labeled (None before; to_datetime takes both)
    flagged: list[bool]
    status: list[str]

    @classmethod
    def empty(cls, n: int) -> _Columns:
        return cls([None] * n, [None] * n, [None] * n, [None] * n, [False] * n, ["ok"] * n)


def _settle_llm_rows(kind: str, rows: list[int], preds, routing, cols: _Columns, report) -> None:
    """After the LLM part (finished or stopped): the cascade's routing rule, then the LLM source
    on every row the model answered and the routing did not give back to the lexicon."""
    if kind == "cascade":
        _apply_routing(rows, preds, routing, cols, report)
    llm_source = "llm" if kind == "llm" else "cascade_llm"
    for i in rows:
        if cols.industry[i] is not None and cols.source[i] is None:
            cols.source[i] = llm_source


@dataclass
class LabelingPlan:
    """What `label_frame` would do now, computed with no call and no write (`recsys label
    --dry-run`). Row counts are input rows; the LLM is asked once per distinct input."""

    labeler: str
    total: int
    offline_answered: int = 0  # rows the offline labeler answers (all of them for `offline`)
    llm_rows: int = 0  # rows for the LLM, after the cascade's offline routing
    llm_inputs: int = 0  # distinct inputs among them
    answered_rows: int = 0  # of llm_rows: answered in the ledger under the current fingerprint
    answered_inputs: int = 0
    to_send: int = 0  # distinct inputs the model would be asked for
    items_per_call: int = 1
    max_concurrency: int = 1
    model: str | None = None
    fingerprint: str | None = None
    estimate: Any = None  # estimate.Estimate when anything would be sent
    mode: str = "online"  # batch: the cost is at the Batch API's price


def plan_labeling(
    df: pd.DataFrame,
    *,
    labeler: str | None = None,
    settings: Settings | None = None,
    llm_options: Any | None = None,
    engine_config: Any | None = None,
    cascade_margin: float | None = None,
    mode: str | None = None,
) -> LabelingPlan:
    """The dry run of `label_frame` with the same arguments: the same routing, input keys and
    fingerprint, read against the ledger without creating, claiming or writing anything."""
    from recsys_assets.labeling.ledger import fingerprint, open_existing_ledger

    settings = settings or load_settings()
    kind = _resolve_kind(df, labeler, settings)
    names, menus, descs = _texts(df)
    _, offline_rows, llm_rows = _route(kind, names, menus, descs, settings, cascade_margin)
    plan = LabelingPlan(
        labeler=kind,
        total=len(df),
        offline_answered=len(offline_rows),
        llm_rows=len(llm_rows),
        mode=_resolve_mode(mode, settings),
    )
    if not llm_rows:
        return plan
    cfg, opts = _llm_setup(settings, llm_options, engine_config, need_key=False)
    params = opts.fingerprint_params()
    fp = fingerprint(params)
    keys, first_row = _distinct_inputs(llm_rows, names, menus, descs)
    answered: set[str] = set()
    latencies: list[float] = []
    ledger = open_existing_ledger(settings)
    if ledger is not None:
        with ledger:
            answered = _answered(ledger.lookup(fp, first_row))
            alike = [
                f
                for f, p in ledger.fingerprint_params().items()
                if all(p.get(k) == params[k] for k in ("model", "base_url", "items_per_call"))
            ]
            latencies = ledger.recent_latencies_ms(alike)
    pending = _pending(first_row, answered, names, menus, descs)
    plan.llm_inputs, plan.answered_inputs, plan.to_send = (
        len(first_row),
        len(answered),
        len(pending),
    )
    plan.answered_rows = sum(1 for k in keys if k in answered)
    plan.items_per_call, plan.max_concurrency = cfg.items_per_call, cfg.max_concurrency
    plan.model, plan.fingerprint = opts.model, fp
    if pending:
        plan.estimate = _estimate(
            pending, opts, cfg, settings.llm.assumed_latency_s, latencies, plan.mode == "batch"
        )
    return plan


def current_fingerprint(
    settings: Settings, *, items_per_call: int | None = None
) -> tuple[str, dict[str, Any]]:
    """The fingerprint (and its parameters) `recsys label` uses with these settings; no key needed."""
    from recsys_assets.labeling.engine import EngineConfig
    from recsys_assets.labeling.ledger import fingerprint

    cfg = EngineConfig.from_settings(settings.llm, items_per_call=items_per_call)
    _, opts = _llm_setup(settings, None, cfg, need_key=False)
    params = opts.fingerprint_params()
    return fingerprint(params), params


def _estimate(
    pending, opts, cfg, assumed_latency_s: float | None, latencies_ms: list[float], batch=False
):
    """Tokens, cost and wall time of sending `pending` as the engine would (see estimate.py)."""
    from recsys_assets.labeling import estimate as est
    from recsys_assets.labeling.engine import call_items
    from recsys_assets.labeling.llm import price_per_1m

    units = [
        pending[i : i + cfg.items_per_call] for i in range(0, len(pending), cfg.items_per_call)
    ]
    calls = [call_items(u) for u in units]
    max_tokens = opts.max_tokens  # None: the estimate sizes the answer from the schema
    tokens_in = est.input_tokens(opts.rendered_system_prompt(), calls)
    tokens_out = sum(est.output_tokens(len(c), max_tokens) for c in calls)
    observed = est.median(latencies_ms)
    if assumed_latency_s is not None:
        latency, source = assumed_latency_s, "RECSYS_LLM_ASSUMED_LATENCY"
    elif observed is not None:
        latency, source = observed / 1000, f"median of {len(latencies_ms):,} calls in the ledger"
    else:
        latency, source = est.default_latency_s(tokens_out / len(calls)), "assumed"
    wall, bound = est.wall_time(
        len(calls),
        cfg.max_concurrency,
        latency,
        rpm=cfg.rpm,
        tpm=cfg.tpm,
        tokens=tokens_in + len(calls) * opts.effective_max_tokens(),  # what the engine reserves
    )
    priced = price_per_1m(opts.model, opts.prices) is not None
    cost = opts.cost(tokens_in, tokens_out, 0, batch=batch) if priced else None
    return est.Estimate(len(calls), tokens_in, tokens_out, cost, latency, source, wall, bound)


def _resolve_mode(mode: str | None, settings: Settings) -> str:
    from recsys_assets.config import LLM_MODES

    mode = (mode or settings.llm.mode or "online").lower()
    if mode not in LLM_MODES:
        raise ValueError(f"mode must be one of {', '.join(LLM_MODES)}, got {mode!r}")
    return mode


def _resolve_kind(df: pd.DataFrame, labeler: str | None, settings: Settings) -> str:
    """The labeler to run (`auto` resolved by the key); refuses an input missing a column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"input is missing column(s): {', '.join(missing)}")
    kind = normalize_labeler(labeler, "labeler") if labeler else settings.resolved_labeler()
    if kind == "auto":
        kind = "llm" if settings.has_openai_key else "offline"
    return kind


def _texts(df: pd.DataFrame) -> tuple[list[str | None], list[str | None], list[str | None]]:
    descs: list[str | None] = (
        _clean(df["description"]) if "description" in df.columns else [None] * len(df)
    )
    return _clean(df["name"]), _clean(df["menu"]), descs


def _route(
    kind: str,
    names: list[str | None],
    menus: list[str | None],
    descs: list[str | None],
    settings: Settings,
    cascade_margin: float | None,
) -> tuple[list[Any], list[int], list[int]]:
    """(offline predictions, rows the offline labeler answers, rows for the LLM).

    The one routing decision, shared by labeling and its dry run (`plan_labeling`), so the dry
    run's count of rows for the LLM is the real run's.
    """
    n = len(names)
    if kind == "llm":
        return [], [], list(range(n))
    from recsys_assets.labeling.offline import OfflineLabeler

    # Chains and re-registrations repeat the same text: predict each distinct input once.
    triples = list(zip(names, menus, descs, strict=True))
    distinct = list(dict.fromkeys(triples))
    by_input = dict(zip(distinct, OfflineLabeler().predict_many(distinct), strict=True))
    preds = [by_input[t] for t in triples]
    if kind == "offline":
        return preds, list(range(n)), []
    from recsys_assets.labeling import cascade

    margin = cascade_margin if cascade_margin is not None else settings.llm.cascade_margin
    split = cascade.plan(preds, margin)
    return preds, split.offline_rows, split.llm_rows


def _apply_routing(rows, preds, routing, cols: _Columns, report) -> None:
    """Keep the offline label where the routing file does not trust the model's different answer,
    and where the model gave no valid answer (the row stays flagged with its label_status,
    ``invalid`` or ``unanswered``, so a rerun still retries the unanswered ones)."""
    from recsys_assets.labeling import cascade

    rule = routing.rule_for(report.model)
    report.cascade_rule = rule.describe()
    for i in rows:
        if cols.industry[i] is None:  # not reached (interrupted, or the circuit breaker)
            continue
        answer = cols.industry[i] if cols.status[i] == "ok" else None
        if cascade.use_llm(preds[i].industry, preds[i].margin, answer, cols.confidence[i], rule):
            continue
        cols.industry[i], cols.confidence[i] = preds[i].industry, float(preds[i].confidence)
        cols.source[i] = "cascade_offline"
        report.cascade_kept_offline += 1


class _Aborted(Exception):
    """Internal: unwinds _label_with_llm to the point where the partial frame is assembled."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message


def _finish(ids, cols: _Columns, report) -> pd.DataFrame:
    keep = [i for i, v in enumerate(cols.industry) if v is not None]
    labeled_at = _stamps([cols.labeled_at[i] for i in keep])
    frame = pd.DataFrame(
        {
            "restaurant_id": ids.iloc[keep].reset_index(drop=True),
            "industry": pd.Series([cols.industry[i] for i in keep], dtype="string"),
            "confidence": pd.Series([cols.confidence[i] for i in keep], dtype="float64"),
            "source": pd.Series([cols.source[i] for i in keep], dtype="string"),
            "labeled_at": pd.Series(labeled_at).astype("datetime64[us, UTC]"),
            "flagged": pd.Series([cols.flagged[i] for i in keep], dtype="bool"),
            "label_status": pd.Series([cols.status[i] for i in keep], dtype="string"),
        },
        columns=list(OUTPUT_COLUMNS),
    )
    report.remaining = report.total - len(keep)
    report.label_distribution = dict(Counter(frame["industry"].tolist()).most_common())
    return frame


def _stamps(values: list[Any]) -> pd.DatetimeIndex:
    """``pd.to_datetime(values, utc=True)``, converting one value when all rows share one stamp
    (every row of an offline run carries the run's ``now``)."""
    if values and all(v is values[0] for v in values):
        return pd.to_datetime(values[:1], utc=True).repeat(len(values))
    return pd.to_datetime(values, utc=True)


def _llm_setup(settings: Settings, llm_options: Any, engine_config: Any, *, need_key: bool):
    """(engine config, provider options) from settings unless given; the options' items per call
    follow the engine's (a CLI flag overrides both), so the fingerprint matches the calls."""
    from recsys_assets.labeling.engine import EngineConfig
    from recsys_assets.labeling.llm import LLMOptions

    cfg = engine_config or EngineConfig.from_settings(settings.llm)
    if llm_options is None:
        if need_key and not settings.has_openai_key:
            raise ConfigError(
                "the llm/cascade labeler needs OPENAI_API_KEY (and optionally "
                "OPENAI_BASE_URL for an OpenAI-compatible server)"
            )
        llm_options = LLMOptions.from_settings(settings.llm, items_per_call=cfg.items_per_call)
    if llm_options.items_per_call != cfg.items_per_call:
        from dataclasses import replace

        llm_options = replace(llm_options, items_per_call=cfg.items_per_call)
    return cfg, llm_options


def _distinct_inputs(rows: list[int], names, menus, descs) -> tuple[list[str], dict[str, int]]:
    """The rows' input keys, and the first row of each distinct key (identical inputs: one call)."""
    from recsys_assets.labeling.ledger import input_key

    keys = [input_key(names[i], menus[i], descs[i]) for i in rows]
    first_row: dict[str, int] = {}
    for i, k in zip(rows, keys, strict=True):
        first_row.setdefault(k, i)
    return keys, first_row


def _answered(found: dict[str, Any]) -> set[str]:
    """Keys with a final answer (ok or invalid) in a ledger lookup: never sent again."""
    from recsys_assets.labeling.ledger import FINAL_STATUSES

    return {k for k, v in found.items() if v.status in FINAL_STATUSES}


def _pending(first_row: dict[str, int], answered: set[str], names, menus, descs) -> list[Any]:
    from recsys_assets.labeling.engine import PendingRow

    return [
        PendingRow(k, names[i] or "", menus[i] or "", descs[i])
        for k, i in first_row.items()
        if k not in answered
    ]


def _label_with_llm(
    rows,
    names,
    menus,
    descs,
    settings,
    report,
    cols: _Columns,
    *,
    progress,
    stop_event,
    llm_options,
    engine_config,
    mode="online",
) -> None:
    """Ask the model for the rows' distinct inputs not answered in the ledger yet, then fill
    `cols` and `report` from the ledger; raises _Aborted when the run stopped early."""
    from recsys_assets.labeling.engine import Engine
    from recsys_assets.labeling.ledger import fingerprint, open_ledger
    from recsys_assets.labeling.llm import LLMLabeler, price_per_1m

    cfg, llm_options = _llm_setup(settings, llm_options, engine_config, need_key=True)
    params = llm_options.fingerprint_params()
    fp = fingerprint(params)
    report.model, report.fingerprint = llm_options.model, fp
    keys, first_row = _distinct_inputs(rows, names, menus, descs)

    ledger = open_ledger(settings)
    try:
        ledger.register_fingerprint(fp, params)
        reused_keys = _answered(ledger.lookup(fp, first_row))
        pending = _pending(first_row, reused_keys, names, menus, descs)
        bar = _progress_bar(progress and bool(pending), len(pending), llm_options.model, mode)
        priced = price_per_1m(llm_options.model, llm_options.prices) is not None
        labeler = LLMLabeler(llm_options)
        try:
            if mode == "batch":
                stats = _run_batch(labeler, ledger, fp, cfg, settings, pending, stop_event, bar)
            else:
                on_progress = _bar_updater(bar, priced)
                engine = Engine(labeler, ledger, fp, cfg, on_progress=on_progress)
                stats = engine.run(pending, stop_event)
        finally:
            if bar is not None:
                bar.close()
        after = ledger.lookup(fp, first_row)
    finally:
        ledger.close()

    _record_answers(rows, keys, after, stats, reused_keys, cols, report)
    _record_stats(report, stats)
    if stats.aborted is not None:
        raise _Aborted(stats.aborted.reason, str(stats.aborted))


def _progress_bar(enabled: bool, total: int, model: str, mode: str):
    """A tqdm bar on stderr, or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=f"labeling ({model}{', batch' if mode == 'batch' else ''})",
        unit="row",
        dynamic_ncols=True,
        file=__import__("sys").stderr,
    )


def _bar_updater(bar, priced: bool):
    """The engine's progress callback: rows done, tokens and cost so far on the bar."""

    def on_progress(delta: int, stats) -> None:
        if bar is not None:
            bar.update(delta)
            bar.set_postfix_str(
                f"tok {stats.tokens_in + stats.tokens_out:,} "
                + (f"${stats.cost_usd:.4f}" if priced else "(no price for model)"),
                refresh=False,
            )

    return on_progress


def _record_answers(rows, keys, after, stats, reused_keys, cols: _Columns, report) -> None:
    """Each row's answer as the ledger holds it after the run; counts who paid for it."""
    for i, k in zip(rows, keys, strict=True):
        rec = after.get(k)
        if rec is None:
            continue
        if rec.status == "failed" and k not in stats.failed_keys:
            continue  # a failure from an earlier run that this run did not get to: remaining
        ok = rec.status == "ok" and taxonomy.is_valid(rec.industry)
        cols.industry[i] = rec.industry if ok else taxonomy.OTHER
        cols.confidence[i] = float(rec.confidence) if ok and rec.confidence is not None else 0.0
        cols.flagged[i] = not ok
        cols.status[i] = "ok" if ok else "unanswered" if rec.status == "failed" else "invalid"
        cols.labeled_at[i] = pd.Timestamp(rec.updated_at)
        if k in reused_keys or k in stats.peer_keys:  # peers' answers were not paid by this run
            report.reused_from_ledger += 1
        else:
            report.labeled_this_run += 1
        if rec.status == "invalid":
            report.invalid += 1
        elif rec.status == "failed":
            report.failed += 1


def _record_stats(report: LabelingReport, stats) -> None:
    """The run's calls, tokens, cost, failures and latencies into the report."""
    report.llm_calls = stats.http_calls
    report.tokens_in, report.tokens_out = stats.tokens_in, stats.tokens_out
    report.tokens_cached = stats.tokens_cached
    report.estimated_cost_usd = stats.cost_usd
    report.failures_by_reason = dict(stats.failures_by_reason)
    report.latency_p50_ms = _percentile(stats.latencies_ms, 50)
    report.latency_p95_ms = _percentile(stats.latencies_ms, 95)
    report.interrupted = stats.interrupted
    report.structured_output = stats.structured_output


def _run_batch(labeler, ledger, fp, cfg, settings, pending, stop_event, bar):
    """The Batch API path (labeling/batch.py); the bar shows rows answered and the batch status."""
    from recsys_assets.labeling.batch import BatchConfig, BatchRunner, openai_client

    def on_progress(delta: int, stats) -> None:
        if bar is not None:
            bar.update(delta)

    def on_status(text: str) -> None:
        if bar is not None:
            bar.set_postfix_str(text, refresh=True)

    runner = BatchRunner(
        openai_client(labeler.options),
        ledger,
        fp,
        labeler,
        BatchConfig(poll_s=settings.llm.batch_poll_s, max_attempts=cfg.max_attempts),
        on_progress=on_progress,
        on_status=on_status,
    )
    return runner.run(pending, stop_event)
