"""Scoring a labeler against a gold file: `recsys label eval`, the cascade's calibration, MLflow.

Why: label quality must be measurable by the people who choose a model, a prompt or the cascade's
routing. The gold rows go through the same ``label_frame`` as `recsys label` (same ledger, so a
re-evaluation costs no call), and the result is scored, printed and logged to MLflow as an
evaluation run, so choices are compared side by side in the MLflow UI.

The default gold file, ``recsys_assets/data/real_world_restaurants.csv``, holds 170 hand-written
real-world restaurants with their true industry; its ``split`` column says which rows the offline
lexicon was tuned on (``tune``) and which were written after it was frozen (``holdout``), so the
offline labeler's accuracy on ``tune`` rows is optimistic and the per-split figures are printed.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_assets import taxonomy
from recsys_assets.config import Settings
from recsys_assets.datafiles import DATA_DIR
from recsys_assets.labeling import cascade
from recsys_assets.labeling.offline import OfflineLabeler, OfflinePrediction

DEFAULT_GOLD = DATA_DIR / "real_world_restaurants.csv"
EXPERIMENT = "labeling-eval"
Z95 = 1.959963984540054  # two-sided 95% normal quantile
GOLD_COLUMNS = ("name", "menu", "industry")  # required; description, split, restaurant_id optional


class EvalError(ValueError):
    """The gold file or the options cannot be evaluated; the message names the file and line."""


class EvalInterrupted(RuntimeError):
    """Ctrl+C / SIGTERM stopped the labeling: the answers so far are in the ledger."""


@dataclass(frozen=True)
class Gold:
    path: Path
    frame: pd.DataFrame  # restaurant_id, name, menu, description: what label_frame takes
    truth: list[str]
    split: list[str] | None
    sha256: str


def load_gold(path: Path | str | None = None) -> Gold:
    """Read and validate a gold CSV (UTF-8, header with name, menu, industry)."""
    path = Path(path) if path else DEFAULT_GOLD
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise EvalError(f"{path}: cannot read the gold file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise EvalError(f"{path}: the gold file is not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in GOLD_COLUMNS if c not in header]
    if missing:
        raise EvalError(
            f"{path}:1: missing column(s) {', '.join(missing)}; a gold file needs "
            f"{', '.join(GOLD_COLUMNS)} (description, split optional); got {header}"
        )
    rows, bad = [], []
    for raw_row in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in raw_row.items()}
        if not any(row.values()):
            continue
        if not taxonomy.is_valid(row["industry"]):
            bad.append(f"line {reader.line_num}: {row['industry']!r}")
        rows.append(row)
    if bad:
        raise EvalError(
            f"{path}: {len(bad)} row(s) with an industry outside the taxonomy "
            f"({'; '.join(bad[:5])}); valid codes: {', '.join(taxonomy.INDUSTRY_CODES)}"
        )
    if not rows:
        raise EvalError(f"{path}: the gold file has a header but no rows")

    def col(name: str) -> list[str | None]:
        return [r.get(name) or None for r in rows]

    ids = [r.get("restaurant_id") or f"gold-{i + 1}" for i, r in enumerate(rows)]
    frame = pd.DataFrame(
        {
            "restaurant_id": ids,
            "name": col("name"),
            "menu": col("menu"),
            "description": col("description"),
        }
    )
    split = [r.get("split") or "" for r in rows] if "split" in header else None
    return Gold(
        path, frame, [r["industry"] for r in rows], split, hashlib.sha256(raw).hexdigest()[:16]
    )


@dataclass(frozen=True)
class Answer:
    """The LLM's stored answer to one gold row (from the ledger)."""

    status: str
    industry: str | None
    confidence: float
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass
class Evaluation:
    gold: Gold
    labeler: str
    predicted: list[str]
    flagged: list[bool]
    source: list[str]
    status: list[str]
    offline: list[OfflinePrediction]
    asked: list[int]  # rows this labeler sends to the LLM
    answers: dict[int, Answer]  # those of them with an answer in the ledger
    report: Any  # service.LabelingReport
    model: str | None = None
    fingerprint: str | None = None
    structured: str | None = None
    items_per_call: int = 1
    rule: cascade.Rule | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.predicted)

    @property
    def correct(self) -> int:
        return sum(p == t for p, t in zip(self.predicted, self.gold.truth, strict=True))

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def offline_ok(self, i: int) -> bool:
        return self.offline[i].industry == self.gold.truth[i]

    def split_accuracy(self) -> dict[str, tuple[int, int]]:
        """split -> (correct, rows), when the gold file has a split column."""
        out: dict[str, tuple[int, int]] = {}
        for i, s in enumerate(self.gold.split or []):
            ok, n = out.get(s, (0, 0))
            out[s] = (ok + (self.predicted[i] == self.gold.truth[i]), n + 1)
        return dict(sorted(out.items()))

    def cases(self) -> list[cascade.Case]:
        """The rows the LLM answered validly, as the cascade's calibration sees them."""
        out = []
        for i, a in sorted(self.answers.items()):
            if a.status == "ok" and a.industry is not None:
                out.append(
                    cascade.Case(
                        self.offline[i].margin,
                        self.offline_ok(i),
                        a.industry == self.gold.truth[i],
                        a.industry == self.offline[i].industry,
                        a.confidence,
                    )
                )
        return out


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion: sane at 0 and n, unlike the normal approximation."""
    if n == 0:
        return (math.nan, math.nan)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# -- running --------------------------------------------------------------------------------------
def evaluate(
    gold: Gold,
    labeler: str,
    settings: Settings,
    *,
    progress: bool = False,
    stop_event: threading.Event | None = None,
) -> Evaluation:
    """Label the gold rows with ``labeler`` through the ledger and collect what scoring needs.

    Raises service.LabelingAborted when the provider refuses (nothing to score), EvalInterrupted
    on Ctrl+C. Rows the circuit breaker left unanswered are scored as labeled: ``other``, flagged.
    """
    from recsys_assets.labeling.engine import EngineConfig
    from recsys_assets.labeling.service import LabelingAborted, label_frame

    cfg = EngineConfig.from_settings(settings.llm)
    positions = None
    try:
        labels, report = label_frame(
            gold.frame,
            labeler=labeler,
            settings=settings,
            progress=progress,
            stop_event=stop_event,
            engine_config=cfg,
        )
    except LabelingAborted as exc:
        if exc.reason != "circuit_open":
            raise
        labels, report, positions = exc.frame, exc.report, exc.positions
    if report.remaining and positions is None:
        raise EvalInterrupted(report.resume_message())
    n = len(gold.frame)
    lab = labels.set_axis(positions if positions is not None else range(len(labels))).reindex(
        range(n)
    )
    offline = OfflineLabeler().predict_many(
        zip(gold.frame["name"], gold.frame["menu"], gold.frame["description"], strict=True)
    )
    kind = report.labeler
    asked = (
        list(range(n))
        if kind == "llm"
        else cascade.plan(offline, settings.llm.cascade_margin).llm_rows
        if kind == "cascade"
        else []
    )
    model, fp, structured = (
        _llm_identity(settings, report) if kind != "offline" else (None, None, None)
    )
    ev = Evaluation(
        gold=gold,
        labeler=kind,
        predicted=lab["industry"].fillna(taxonomy.OTHER).astype(str).tolist(),
        flagged=lab["flagged"].astype("boolean").fillna(True).astype(bool).tolist(),
        source=lab["source"].fillna("llm" if kind == "llm" else "cascade_llm").astype(str).tolist(),
        status=lab["label_status"].fillna("unanswered").astype(str).tolist(),
        offline=offline,
        asked=asked,
        answers={},
        report=report,
        model=model,
        fingerprint=fp,
        structured=structured,
        items_per_call=cfg.items_per_call,
    )
    if kind != "offline":
        ev.answers = _ledger_answers(settings, fp, gold, asked)
    if kind == "cascade":
        ev.rule = cascade.load_routing(settings.llm.cascade_routing).rule_for(model)
    return ev


def _llm_identity(settings: Settings, report: Any) -> tuple[str, str, str | None]:
    """Model, prompt fingerprint and structured-output method, as the labeling run used them."""
    from recsys_assets.labeling.ledger import fingerprint
    from recsys_assets.labeling.llm import LLMOptions

    opts = LLMOptions.from_settings(settings.llm)
    fp = report.fingerprint or fingerprint(opts.fingerprint_params())
    structured = (
        getattr(report, "structured_method", None)
        or getattr(opts, "structured", None)
        or getattr(settings.llm, "structured", None)
    )
    return report.model or opts.model, fp, str(structured) if structured else None


def _ledger_answers(
    settings: Settings, fp: str | None, gold: Gold, rows: Sequence[int]
) -> dict[int, Answer]:
    """The stored answers (any status) of the asked rows under this fingerprint."""
    from recsys_assets.labeling.ledger import input_key, open_ledger

    if not fp or not rows:
        return {}
    f = gold.frame
    keys = {i: input_key(f["name"].iat[i], f["menu"].iat[i], f["description"].iat[i]) for i in rows}
    wanted = set(keys.values())
    with open_ledger(settings) as ledger:
        stored = {
            r["input_key"]: r for r in ledger.iter_rows(fingerprint=fp) if r["input_key"] in wanted
        }
    out = {}
    for i, k in keys.items():
        r = stored.get(k)
        if r is not None:
            out[i] = Answer(
                str(r["status"]),
                r["industry"],
                float(r["confidence"] or 0.0),
                int(r["tokens_in"] or 0),
                int(r["tokens_out"] or 0),
                float(r["cost_usd"] or 0.0),
            )
    return out


# -- scores -----------------------------------------------------------------------------------------
def per_industry(ev: Evaluation) -> pd.DataFrame:
    """Precision, recall, F1, support (gold rows) and predicted rows per industry, taxonomy order."""
    rows = []
    for code in taxonomy.INDUSTRY_CODES:
        tp = sum(p == code == t for p, t in zip(ev.predicted, ev.gold.truth, strict=True))
        support = ev.gold.truth.count(code)
        predicted = ev.predicted.count(code)
        precision = tp / predicted if predicted else math.nan
        recall = tp / support if support else math.nan
        f1 = (
            2 * precision * recall / (precision + recall)
            if predicted and support and precision + recall
            else (0.0 if support else math.nan)
        )
        rows.append(
            {
                "industry": code,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
                "predicted": predicted,
            }
        )
    return pd.DataFrame(rows)


def confusion(ev: Evaluation) -> pd.DataFrame:
    """Counts, gold industry (rows) x predicted industry (columns), every taxonomy code."""
    codes = list(taxonomy.INDUSTRY_CODES)
    counts = Counter(zip(ev.gold.truth, ev.predicted, strict=True))
    return pd.DataFrame(
        [[counts[(g, p)] for p in codes] for g in codes], index=codes, columns=codes
    )


def costs(ev: Evaluation) -> dict[str, float]:
    """This run's spend (0 when answered from the ledger) and the spend per 1,000 rows as recorded
    in the ledger when the answers were paid for (what labeling such rows afresh costs)."""
    r, per_k = ev.report, 1000 / ev.n
    paid = [a for a in ev.answers.values() if a.status in ("ok", "invalid")]
    return {
        "llm_calls": float(r.llm_calls),
        "tokens_in": float(r.tokens_in),
        "tokens_out": float(r.tokens_out),
        "cost_usd": float(r.estimated_cost_usd),
        "rows_to_llm": float(len(ev.asked)),
        "calls_per_1k": len(ev.asked) / max(ev.items_per_call, 1) * per_k,
        "tokens_per_1k": sum(a.tokens_in + a.tokens_out for a in paid) * per_k,
        "cost_per_1k_usd": sum(a.cost_usd for a in paid) * per_k,
    }


def metrics(ev: Evaluation) -> dict[str, float]:
    lo, hi = wilson(ev.correct, ev.n)
    table = per_industry(ev)
    out = {
        "accuracy": ev.accuracy,
        "accuracy_ci95_low": lo,
        "accuracy_ci95_high": hi,
        "correct": float(ev.correct),
        "rows": float(ev.n),
        "macro_f1": float(table.loc[table["support"] > 0, "f1"].fillna(0.0).mean()),
        "flagged_share": sum(ev.flagged) / ev.n,
        "unanswered": float(ev.status.count("unanswered")),
        "invalid": float(ev.status.count("invalid")),
        "offline_accuracy_same_rows": sum(map(ev.offline_ok, range(ev.n))) / ev.n,
        "kept_offline": float(getattr(ev.report, "cascade_kept_offline", 0)),
        **costs(ev),
    }
    for split, (ok, n) in ev.split_accuracy().items():
        out[f"accuracy_{split or 'unsplit'}"] = ok / n
    return out


def _band_label(edges: Sequence[float], value: float) -> str:
    for lo, hi in zip(edges, [*edges[1:], math.inf], strict=True):
        if lo <= value < hi:
            return f"[{lo:g}, {hi:g})" if hi != math.inf else f">= {lo:g}"
    return f"< {edges[0]:g}"


def margin_bands(ev: Evaluation, table: cascade.RoutingTable) -> pd.DataFrame:
    """Per offline-margin band, every gold row: how the lexicon, the model and the result did."""
    rows: dict[str, dict[str, int]] = {}
    for i in range(ev.n):
        band = _band_label(table.margin_bands, ev.offline[i].margin)
        r = rows.setdefault(
            band,
            dict.fromkeys(("rows", "asked", "answered", "offline_ok", "llm_ok", "result_ok"), 0),
        )
        a = ev.answers.get(i)
        r["rows"] += 1
        r["asked"] += i in ev.asked
        r["answered"] += a is not None and a.status == "ok"
        r["offline_ok"] += ev.offline_ok(i)
        r["llm_ok"] += a is not None and a.status == "ok" and a.industry == ev.gold.truth[i]
        r["result_ok"] += ev.predicted[i] == ev.gold.truth[i]
    order = [_band_label(table.margin_bands, e) for e in table.margin_bands]
    return pd.DataFrame([{"offline_margin": b, **rows[b]} for b in order if b in rows])


def band_cells(ev: Evaluation, table: cascade.RoutingTable) -> pd.DataFrame:
    """Rows the model answered, by offline-margin band x model-confidence band x agreement."""
    cells: dict[tuple[int, int, bool], dict[str, int]] = {}
    for i, a in ev.answers.items():
        if a.status != "ok":
            continue
        m = max(k for k, e in enumerate(table.margin_bands) if ev.offline[i].margin >= e)
        c = max((k for k, e in enumerate(table.confidence_bands) if a.confidence >= e), default=0)
        key = (m, c, a.industry == ev.offline[i].industry)
        r = cells.setdefault(key, dict.fromkeys(("rows", "offline_ok", "llm_ok", "result_ok"), 0))
        r["rows"] += 1
        r["offline_ok"] += ev.offline_ok(i)
        r["llm_ok"] += a.industry == ev.gold.truth[i]
        r["result_ok"] += ev.predicted[i] == ev.gold.truth[i]
    out = []
    for (m, c, agree), r in sorted(cells.items()):
        out.append(
            {
                "offline_margin": _band_label(table.margin_bands, table.margin_bands[m]),
                "llm_confidence": _band_label(table.confidence_bands, table.confidence_bands[c]),
                "agree": "yes" if agree else "no",
                **r,
            }
        )
    return pd.DataFrame(
        out,
        columns=[
            "offline_margin",
            "llm_confidence",
            "agree",
            "rows",
            "offline_ok",
            "llm_ok",
            "result_ok",
        ],
    )


# -- calibration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    fit: cascade.Fit
    rows: int
    cases: int
    offline_correct: int  # on all gold rows
    fitted_correct: int  # the cascade with the fitted rule, on the rows it was fitted on
    heldout_correct: float  # mean over repeats of the cross-validated correct rows
    folds: int
    repeats: int
    fold_rules: Counter  # "trust_below/min_confidence" -> how many folds chose it

    @property
    def heldout_accuracy(self) -> float:
        return self.heldout_correct / self.rows


def _correct_with(
    rule: cascade.Rule, ev: Evaluation, rows: Sequence[int], cases: dict[int, cascade.Case]
) -> int:
    total = 0
    for i in rows:
        c = cases.get(i)
        if (
            c is not None
            and not c.agree
            and c.margin < rule.trust_below
            and c.confidence >= rule.min_confidence
        ):
            total += c.llm_ok
        else:
            total += ev.offline_ok(i)
    return total


def calibrate(
    ev: Evaluation, table: cascade.RoutingTable, *, folds: int = 5, repeats: int = 5, seed: int = 0
) -> Calibration:
    """Fit the model's rule on every answered gold row, and estimate its accuracy on unseen rows by
    repeated k-fold cross-validation (fit on k-1 folds, score the held-out fold)."""
    entry = ev.model or "default"
    answered = sorted(
        i for i, a in ev.answers.items() if a.status == "ok" and a.industry is not None
    )
    by_row = dict(zip(answered, ev.cases(), strict=True))
    fitted = cascade.fit(list(by_row.values()), table, entry)
    heldout, chosen = 0, Counter[str]()
    for r in range(repeats):
        order = list(range(ev.n))
        random.Random(seed + r).shuffle(order)  # noqa: S311 (reproducible folds, not secrets)
        for f in range(folds):
            test = [i for pos, i in enumerate(order) if pos % folds == f]
            held = set(test)
            train = [c for i, c in by_row.items() if i not in held]
            rule = cascade.fit(train, table, entry).rule
            chosen[f"{rule.trust_below:g}/{rule.min_confidence:g}"] += 1
            heldout += _correct_with(rule, ev, test, by_row)
    return Calibration(
        fitted,
        ev.n,
        len(by_row),
        sum(map(ev.offline_ok, range(ev.n))),
        _correct_with(fitted.rule, ev, range(ev.n), by_row),
        heldout / repeats,
        folds,
        repeats,
        chosen,
    )


def write_routing(cal: Calibration, ev: Evaluation, table: cascade.RoutingTable, out: Path) -> Path:
    """Write a copy of ``table``'s file with this model's rule replaced (its leading comment kept),
    atomically, and check that it loads."""
    import os
    from datetime import UTC, datetime

    import yaml

    text = table.path.read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():  # the leading comment block documents the format: keep it
        if line.strip() and not line.startswith("#"):
            break
        header.append(line)
    doc = yaml.safe_load(text)
    rule = cal.fit.rule
    doc.setdefault("models", {})
    doc["models"] = dict(doc["models"] or {})
    doc["models"][rule.entry] = {
        "trust_below": rule.trust_below,
        "min_confidence": rule.min_confidence,
        "fitted": {
            "gold": ev.gold.path.name,
            "gold_sha256": ev.gold.sha256,
            "rows": cal.rows,
            "answered": cal.cases,
            "labeler": ev.labeler,
            "prompt_fingerprint": ev.fingerprint,
            "offline_correct": cal.offline_correct,
            "fitted_correct": cal.fitted_correct,
            "cv_heldout_accuracy": round(cal.heldout_accuracy, 4),
            "cv": f"{cal.folds}-fold x {cal.repeats}",
            "date": datetime.now(UTC).date().isoformat(),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        body = yaml.safe_dump(
            doc, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
        )
        tmp.write_text("\n".join(header).rstrip() + "\n\n" + body, encoding="utf-8")
        cascade.load_routing(tmp)  # a file the cascade cannot read is never put in place
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# -- MLflow -----------------------------------------------------------------------------------------
def _params(ev: Evaluation, settings: Settings) -> dict[str, str]:
    params: dict[str, Any] = {
        "labeler": ev.labeler,
        "model": ev.model or "offline-lexicon",
        "prompt_fingerprint": ev.fingerprint or "none",
        "structured_method": ev.structured or "n/a",
        "items_per_call": ev.items_per_call if ev.labeler != "offline" else "n/a",
        "gold_file": ev.gold.path.name,
        "gold_sha256": ev.gold.sha256,
        "rows": ev.n,
        "offline_lexicon": OfflineLabeler.version,
    }
    if ev.labeler == "cascade":
        params["cascade_margin"] = settings.llm.cascade_margin
        params["routing_rule"] = ev.rule.describe() if ev.rule else "none"
    return {k: str(v) for k, v in params.items()}


def confusion_plot(ev: Evaluation, out: Path) -> Path:
    """The confusion matrix as a PNG (counts in the cells, errors in red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = confusion(ev)
    codes, counts = list(cm.index), cm.to_numpy()
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(counts, cmap="Blues")
    for g, gold_code in enumerate(codes):
        for p, pred_code in enumerate(codes):
            v = int(counts[g, p])
            if v:
                ax.text(
                    p,
                    g,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="red" if gold_code != pred_code else "black",
                )
    ax.set_xticks(range(len(codes)), codes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(codes)), codes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    lo, hi = wilson(ev.correct, ev.n)
    ax.set_title(
        f"{ev.labeler} {ev.model or ''}: accuracy {ev.accuracy:.3f} "
        f"(95% CI {lo:.3f}-{hi:.3f}), {ev.n} rows"
    )
    fig.tight_layout()
    path = out / "confusion_matrix.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def log_mlflow(
    ev: Evaluation, settings: Settings, table: cascade.RoutingTable, cal: Calibration | None = None
) -> tuple[str, str]:
    """Log the evaluation as a run of the `labeling-eval` experiment; (run id, tracking URI)."""
    import tempfile

    import mlflow

    from recsys_assets.ranking.registry import configure_mlflow
    from recsys_assets.safe_csv import write_csv

    client = configure_mlflow(settings)
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        exp_id = exp.experiment_id
    else:
        root = settings.mlflow_artifact_root
        root.mkdir(parents=True, exist_ok=True)
        exp_id = client.create_experiment(EXPERIMENT, artifact_location=root.resolve().as_uri())
    values = {k: float(v) for k, v in metrics(ev).items() if math.isfinite(float(v))}
    if cal is not None:
        values.update(
            {
                "calibrated_trust_below": cal.fit.rule.trust_below,
                "calibrated_min_confidence": cal.fit.rule.min_confidence,
                "calibrated_fitted_accuracy": cal.fitted_correct / cal.rows,
                "calibrated_heldout_accuracy": cal.heldout_accuracy,
            }
        )
    with (
        tempfile.TemporaryDirectory(prefix="label-eval-") as tmp,
        mlflow.start_run(
            experiment_id=exp_id,
            run_name=f"{ev.labeler} {ev.model or 'offline-lexicon'}",
            tags={"gold_sha256": ev.gold.sha256},
        ) as run,
    ):
        out = Path(tmp)
        mlflow.log_params(_params(ev, settings))
        mlflow.log_metrics(values)
        mlflow.log_artifact(str(confusion_plot(ev, out)), artifact_path="evaluation")
        frames = {
            "per_industry.csv": per_industry(ev),
            "confusion.csv": confusion(ev).rename_axis("gold").reset_index(),
            "margin_bands.csv": margin_bands(ev, table),
            "band_cells.csv": band_cells(ev, table),
            "predictions.csv": predictions(ev),
        }
        for name, frame in frames.items():
            write_csv(frame, out / name)
            mlflow.log_artifact(str(out / name), artifact_path="evaluation")
        return run.info.run_id, settings.mlflow_tracking_uri


def predictions(ev: Evaluation) -> pd.DataFrame:
    """One row per gold row: the text, the truth, the result, and each labeler's answer."""
    f = ev.gold.frame
    return pd.DataFrame(
        {
            "name": f["name"],
            "menu": f["menu"],
            "gold": ev.gold.truth,
            "predicted": ev.predicted,
            "correct": [p == t for p, t in zip(ev.predicted, ev.gold.truth, strict=True)],
            "source": ev.source,
            "label_status": ev.status,
            "flagged": ev.flagged,
            "offline": [p.industry for p in ev.offline],
            "offline_margin": [p.margin for p in ev.offline],
            "llm": [ev.answers[i].industry if i in ev.answers else None for i in range(ev.n)],
            "llm_confidence": [
                ev.answers[i].confidence if i in ev.answers else None for i in range(ev.n)
            ],
        }
    )


# -- the printed report -----------------------------------------------------------------------------
def _table(frame: pd.DataFrame, floats: str = "{:.3f}") -> list[str]:
    """A DataFrame as aligned text lines (NaN printed as '-')."""
    cells = [[str(c) for c in frame.columns]]
    for row in frame.itertuples(index=False):
        cells.append(
            [
                "-"
                if isinstance(v, float) and math.isnan(v)
                else floats.format(v)
                if isinstance(v, float)
                else str(v)
                for v in row
            ]
        )
    widths = [max(len(r[k]) for r in cells) for k in range(len(cells[0]))]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if k == 0 else c.rjust(w)
            for k, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in cells
    ]


def report_lines(ev: Evaluation, table: cascade.RoutingTable) -> list[str]:
    """What `recsys label eval` prints: headline, per industry, confusions, bands, costs."""
    lo, hi = wilson(ev.correct, ev.n)
    who = (
        "offline lexicon"
        if ev.labeler == "offline"
        else (
            f"model {ev.model}, prompt fingerprint {ev.fingerprint}"
            + (f", structured {ev.structured}" if ev.structured else "")
        )
    )
    lines = [
        f"gold {ev.gold.path} ({ev.n} rows), labeler {ev.labeler}: {who}",
        f"accuracy {ev.accuracy:.4f} ({ev.correct}/{ev.n}), 95% CI {lo:.4f}-{hi:.4f} (Wilson)",
    ]
    splits = ev.split_accuracy()
    if splits:
        lines.append(
            "by split: "
            + ", ".join(f"{s or '(none)'} {ok / n:.4f} ({ok}/{n})" for s, (ok, n) in splits.items())
        )
    off = sum(map(ev.offline_ok, range(ev.n)))
    if ev.labeler != "offline":
        lines.append(f"offline lexicon on the same rows: {off / ev.n:.4f} ({off}/{ev.n})")
    srcs = Counter(ev.source)
    lines.append(
        f"flagged {sum(ev.flagged) / ev.n:.1%} ({sum(ev.flagged)}); sources "
        + ", ".join(f"{k} {v}" for k, v in sorted(srcs.items()))
        + (f"; invalid {ev.status.count('invalid')}" if "invalid" in ev.status else "")
        + (f"; unanswered {ev.status.count('unanswered')}" if "unanswered" in ev.status else "")
    )
    if ev.rule is not None:
        lines.append(
            f"cascade routing ({table.path.name}) {ev.rule.describe()}; the lexicon's "
            f"label kept on {ev.report.cascade_kept_offline} of the rows sent (model not "
            "trusted there, or no valid answer)"
        )
    c = costs(ev)
    if ev.labeler != "offline":
        lines.append(
            f"LLM: {int(c['rows_to_llm'])} rows sent; this run {int(c['llm_calls'])} calls, "
            f"{int(c['tokens_in']):,}+{int(c['tokens_out']):,} tokens, "
            f"${c['cost_usd']:.4f}; per 1k rows {c['calls_per_1k']:.0f} calls, "
            f"{c['tokens_per_1k']:,.0f} tokens, ${c['cost_per_1k_usd']:.4f} "
            "(as recorded in the ledger)"
        )
    lines += ["", "per industry:", *_table(per_industry(ev))]
    counts = confusion(ev).to_numpy()
    codes = taxonomy.INDUSTRY_CODES
    errors: list[tuple[str, str, int]] = [
        (g, p, int(counts[a, b]))
        for a, g in enumerate(codes)
        for b, p in enumerate(codes)
        if a != b and counts[a, b]
    ]
    errors.sort(key=lambda e: (-e[2], e[0], e[1]))
    lines += ["", f"confusions (gold -> predicted): {sum(e[2] for e in errors)} rows"]
    lines += (
        _table(pd.DataFrame(errors, columns=["gold", "predicted", "rows"]))
        if errors
        else ["  none"]
    )
    bands = margin_bands(ev, table)
    if ev.labeler == "offline":
        bands = bands[["offline_margin", "rows", "offline_ok"]]
    lines += ["", "by offline margin band (ok = right):", *_table(bands)]
    cells = band_cells(ev, table)
    if len(cells):
        lines += [
            "",
            "rows the model answered, by offline margin x model confidence x agreement:",
            *_table(cells),
        ]
    return lines


def calibration_lines(cal: Calibration, offline_rows: int) -> list[str]:
    rule = cal.fit.rule
    top = ", ".join(f"{k} x{v}" for k, v in cal.fold_rules.most_common(4))
    return [
        "",
        f"calibration on {cal.cases} answered rows of {cal.rows}: {rule.describe()}",
        (
            f"  fitted rows: cascade {cal.fitted_correct}/{cal.rows} vs offline "
            f"{cal.offline_correct}/{offline_rows} (gain {cal.fit.gain}, {cal.fit.overrides} "
            "overrides)"
        ),
        (
            f"  held-out ({cal.folds}-fold cross-validation x {cal.repeats}): cascade "
            f"{cal.heldout_accuracy:.4f} vs offline {cal.offline_correct / cal.rows:.4f} "
            f"(rules chosen per fold, trust_below/min_confidence: {top})"
        ),
    ]


def replay(
    gold: Gold,
    answers: dict[int, Answer],
    *,
    labeler: str,
    model: str,
    rule: cascade.Rule | None = None,
    ask_margin: float = cascade.DEFAULT_MARGIN,
) -> Evaluation:
    """An Evaluation rebuilt from stored answers, with no server and no ledger: what ``labeler``
    (llm or cascade, with ``rule``) answers given them. The benchmark scores recorded real-model
    answers with it; every row the labeler would send must have an answer."""
    from recsys_assets.labeling.service import LabelingReport

    n = len(gold.truth)
    offline = OfflineLabeler().predict_many(
        zip(gold.frame["name"], gold.frame["menu"], gold.frame["description"], strict=True)
    )
    asked = list(range(n)) if labeler == "llm" else cascade.plan(offline, ask_margin).llm_rows
    missing = [i for i in asked if i not in answers]
    if missing:
        raise EvalError(
            f"no stored answer for {len(missing)} row(s) the {labeler} labeler sends "
            f"(first: line {missing[0] + 2} of {gold.path.name})"
        )
    report = LabelingReport(labeler=labeler, total=n)
    predicted, source = [p.industry for p in offline], ["offline"] * n
    for i in asked:
        a = answers[i]
        ok = a.status == "ok" and a.industry is not None
        if labeler == "llm":
            predicted[i], source[i] = (str(a.industry) if ok else taxonomy.OTHER), "llm"
            continue
        if rule is not None and cascade.use_llm(
            offline[i].industry, offline[i].margin, a.industry if ok else None, a.confidence, rule
        ):
            predicted[i], source[i] = str(a.industry), "cascade_llm"
        else:  # the lexicon's label, also where the model gave no valid answer
            source[i] = "cascade_offline"
            report.cascade_kept_offline += 1
    named = {"ok": "ok", "invalid": "invalid", "failed": "unanswered"}
    sent = set(asked)
    status = [named.get(answers[i].status, "unanswered") if i in sent else "ok" for i in range(n)]
    return Evaluation(
        gold,
        labeler,
        predicted,
        [s != "ok" for s in status],
        source,
        status,
        offline,
        asked,
        {i: answers[i] for i in asked},
        report,
        model=model,
        rule=rule,
    )
