"""The cascade: the free offline labeler answers where it is sure, the paid LLM only the rest, and
the LLM's answer is used only where the model is measured to be better than the lexicon.

Two decisions, two thresholds:

1. *Ask* (cost): rows whose offline margin (score gap between the lexicon's best and second-best
   industry) is below ``RECSYS_CASCADE_MARGIN`` (default 0.35) go to the LLM. The default comes from
   benchmarks/labeling.py on the generated sample: at margin >= 0.35 the offline labeler answers
   ~88% of rows at ~99.8% accuracy, so only ~12% of rows are paid for.
2. *Trust* (accuracy): an answered row takes the LLM's label when it agrees with the lexicon, or
   when it disagrees, the offline margin is below ``trust_below`` and the model's confidence is at
   least ``min_confidence``; otherwise the offline label is kept. A weak model handed the lexicon's
   hard rows is wrong more often than the lexicon even there (issue 11: a 1.5B model made the
   cascade worse than offline alone), so ``trust_below`` and ``min_confidence`` are measured per
   model on a gold set (``fit``, run by ``recsys label eval --calibrate``) and read from a data file,
   ``recsys_assets/data/cascade_routing.yaml`` (or ``RECSYS_CASCADE_ROUTING``), never from code.

``fit`` only trusts the model in offline-margin bands where, on the gold rows, its different answers
were right at least as often as the lexicon's, and only when that adds at least ``min_gain`` correct
rows overall; otherwise it returns "never override". So on the gold set it was fitted on, the cascade
is never below the offline labeler by construction; on new rows the held-out (cross-validated)
accuracy that ``recsys label eval --calibrate`` prints is the honest estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from recsys_assets.config import DEFAULT_CASCADE_MARGIN
from recsys_assets.datafiles import DATA_DIR, DataFileError, LocatedDict, load_yaml

DEFAULT_MARGIN = DEFAULT_CASCADE_MARGIN  # RECSYS_CASCADE_MARGIN: settings.llm.cascade_margin
ROUTING_PATH = DATA_DIR / "cascade_routing.yaml"


@dataclass(frozen=True)
class CascadePlan:
    offline_rows: list[int]  # answered by the offline labeler
    llm_rows: list[int]  # sent to the LLM

    @property
    def saved_share(self) -> float:
        n = len(self.offline_rows) + len(self.llm_rows)
        return len(self.offline_rows) / n if n else 0.0


def plan(predictions: Sequence[Any], margin: float) -> CascadePlan:
    """Split row indices by the offline prediction's margin (>= margin stays offline)."""
    offline: list[int] = []
    llm: list[int] = []
    for i, p in enumerate(predictions):
        (offline if p.margin >= margin else llm).append(i)
    return CascadePlan(offline, llm)


def sweep(
    predictions: Sequence[Any], truth: Sequence[str], margins: Sequence[float]
) -> list[dict[str, float]]:
    """For each threshold: share answered offline, offline accuracy there, accuracy of the rest."""
    rows = []
    for m in margins:
        p = plan(predictions, m)
        conf_ok = sum(predictions[i].industry == truth[i] for i in p.offline_rows)
        rest_ok = sum(predictions[i].industry == truth[i] for i in p.llm_rows)
        rows.append(
            {
                "margin": m,
                "offline_share": p.saved_share,
                "offline_accuracy": conf_ok / len(p.offline_rows)
                if p.offline_rows
                else float("nan"),
                "offline_accuracy_on_rest": rest_ok / len(p.llm_rows)
                if p.llm_rows
                else float("nan"),
            }
        )
    return rows


# -- routing: where the model's answer is trusted over the lexicon's ---------------------------
@dataclass(frozen=True)
class Rule:
    """Take the LLM's different label only below this offline margin and at this confidence."""

    trust_below: float = 0.0  # 0: never override the lexicon
    min_confidence: float = 1.0
    entry: str = "default"  # which entry of the routing file (a model name, or "default")
    fitted: dict[str, Any] = field(default_factory=dict, compare=False)  # provenance, as written

    def describe(self) -> str:
        if self.trust_below <= 0:
            return f"{self.entry}: the offline label is kept wherever the model disagrees"
        return (
            f"{self.entry}: the model's label replaces the offline one where the offline margin "
            f"< {self.trust_below:g} and the model's confidence >= {self.min_confidence:g}"
        )


@dataclass(frozen=True)
class RoutingTable:
    """The routing file: band edges (calibration grid and report bands) and one rule per model."""

    path: Path
    margin_bands: tuple[float, ...]  # ascending edges starting at 0: [0, e1), [e1, e2), ... [eN, 1]
    confidence_bands: tuple[float, ...]  # ascending edges starting at 0
    min_gain: int
    default: Rule
    models: dict[str, Rule]

    def rule_for(self, model: str | None) -> Rule:
        """The model's own rule when it has one (exact name, case-insensitive), else the default."""
        if model:
            for name, rule in self.models.items():
                if name.lower() == model.strip().lower():
                    return rule
        return self.default


def use_llm(
    offline_industry: str,
    offline_margin: float,
    llm_industry: str | None,
    llm_confidence: float | None,
    rule: Rule,
) -> bool:
    """True when the row takes the LLM's label; False keeps the offline label.

    No valid answer (``llm_industry`` None) keeps the lexicon; an agreeing answer is the same label.
    """
    if llm_industry is None:
        return False
    if llm_industry == offline_industry:
        return True
    return offline_margin < rule.trust_below and (llm_confidence or 0.0) >= rule.min_confidence


def _edges(path: Path, doc: LocatedDict, key: str) -> tuple[float, ...]:
    value = doc.get(key)
    line = doc.line_of(key)
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise DataFileError(f"{path}:{line}: {key} must be a list of numbers")
    edges = tuple(float(v) for v in value)
    if edges[0] != 0.0 or any(b <= a for a, b in pairwise(edges)) or edges[-1] > 1:
        raise DataFileError(
            f"{path}:{line}: {key} must start at 0 and increase, within 0..1; got {list(edges)}"
        )
    return edges


def _rule(path: Path, name: str, value: Any, line: int) -> Rule:
    if not isinstance(value, dict):
        raise DataFileError(f"{path}:{line}: {name}: expected trust_below and min_confidence")
    unknown = set(value) - {"trust_below", "min_confidence", "fitted"}
    if unknown:
        raise DataFileError(f"{path}:{line}: {name}: unknown key(s) {', '.join(sorted(unknown))}")
    nums = {}
    for key in ("trust_below", "min_confidence"):
        v = value.get(key)
        if (
            not isinstance(v, int | float)
            or isinstance(v, bool)
            or not math.isfinite(v)
            or not 0 <= v <= 1.0001
        ):
            raise DataFileError(f"{path}:{line}: {name}: {key} must be a number in 0..1, got {v!r}")
        nums[key] = float(v)
    fitted = value.get("fitted") or {}
    if not isinstance(fitted, dict):
        raise DataFileError(f"{path}:{line}: {name}: fitted must be a mapping (provenance)")
    return Rule(nums["trust_below"], nums["min_confidence"], name, dict(fitted))


def load_routing(path: Path | str | None = None) -> RoutingTable:
    """Read and validate a routing file (default: the packaged one); DataFileError names the line."""
    path = Path(path) if path else ROUTING_PATH
    if not path.is_file():
        raise DataFileError(f"{path}: cascade routing file not found (RECSYS_CASCADE_ROUTING)")
    doc = load_yaml(path)
    if not isinstance(doc, LocatedDict):
        raise DataFileError(f"{path}:1: expected a mapping with bands, default and models")
    bands = doc.get("bands")
    if not isinstance(bands, LocatedDict):
        raise DataFileError(
            f"{path}:{doc.line_of('bands')}: bands: expected offline_margin and "
            "llm_confidence lists"
        )
    min_gain = doc.get("min_gain", 1)
    if not isinstance(min_gain, int) or isinstance(min_gain, bool) or min_gain < 1:
        raise DataFileError(f"{path}:{doc.line_of('min_gain')}: min_gain must be an integer >= 1")
    if "default" not in doc:
        raise DataFileError(f"{path}:1: a default rule (for models without their own) is required")
    models = doc.get("models") or {}
    if not isinstance(models, LocatedDict | dict):
        raise DataFileError(f"{path}:{doc.line_of('models')}: models: expected model names")
    line_of = models.line_of if isinstance(models, LocatedDict) else (lambda _k: 0)
    return RoutingTable(
        path=path,
        margin_bands=_edges(path, bands, "offline_margin"),
        confidence_bands=_edges(path, bands, "llm_confidence"),
        min_gain=min_gain,
        default=_rule(path, "default", doc["default"], doc.line_of("default")),
        models={str(k): _rule(path, str(k), v, line_of(k)) for k, v in models.items()},
    )


# -- fitting a rule on gold rows ---------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One gold row the LLM answered: the offline margin, who was right, the model's confidence."""

    margin: float
    offline_ok: bool
    llm_ok: bool
    agree: bool
    confidence: float


@dataclass(frozen=True)
class Fit:
    rule: Rule
    gain: int  # correct rows over the offline labeler, on the cases it was fitted on
    overrides: int  # rows where the model's different label was taken


def gain(cases: Sequence[Case], trust_below: float, min_confidence: float) -> tuple[int, int]:
    """(correct rows gained over offline, rows overridden) when the rule is applied to ``cases``."""
    won = overrides = 0
    for c in cases:
        if not c.agree and c.margin < trust_below and c.confidence >= min_confidence:
            overrides += 1
            won += int(c.llm_ok) - int(c.offline_ok)
    return won, overrides


def fit(cases: Sequence[Case], table: RoutingTable, entry: str = "default") -> Fit:
    """The rule that gains most over the offline labeler on ``cases``, within the bands' grid.

    A candidate (trust_below = a margin band edge, min_confidence = a confidence band edge) is
    admissible only when no margin band below trust_below loses rows and the total gain is at least
    ``table.min_gain``; ties go to the rule that overrides fewer rows. None admissible: "never".
    """
    edges = table.margin_bands
    best = Fit(Rule(0.0, 1.0, entry), 0, 0)
    for k, trust_below in enumerate(edges[1:], start=1):
        for min_conf in reversed(table.confidence_bands):  # ties: the higher confidence bar
            bands_ok = all(
                gain([c for c in cases if lo <= c.margin < hi], hi, min_conf)[0] >= 0
                for lo, hi in pairwise(edges[: k + 1])
            )
            won, overrides = gain(cases, trust_below, min_conf)
            if not bands_ok or won < table.min_gain:
                continue
            if (won, -overrides) > (best.gain, -best.overrides):  # ties: the lower trust_below
                best = Fit(Rule(trust_below, min_conf, entry), won, overrides)
    return best
