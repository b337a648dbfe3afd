"""The cascade: the free offline labeler answers where it is sure, the paid LLM only the rest.

"Sure" is the offline labeler's margin (score gap between its best and second-best industry).
The default threshold comes from benchmarks/labeling.py on the generated sample (1,000 and 5,000
restaurants, ground truth known): at margin >= 0.35 the offline labeler answers ~88% of rows at
~99.8% accuracy, and the rows below it are where its errors concentrate (~85-89% accuracy), so
only ~12% of rows are paid for. See docs/labeling.md for the sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recsys_assets.config import DEFAULT_CASCADE_MARGIN

DEFAULT_MARGIN = DEFAULT_CASCADE_MARGIN  # RECSYS_CASCADE_MARGIN: settings.llm.cascade_margin


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
    offline, llm = [], []
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
        rows.append({
            "margin": m,
            "offline_share": p.saved_share,
            "offline_accuracy": conf_ok / len(p.offline_rows) if p.offline_rows else float("nan"),
            "offline_accuracy_on_rest": rest_ok / len(p.llm_rows) if p.llm_rows else float("nan"),
        })
    return rows
