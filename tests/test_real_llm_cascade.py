"""The cascade with a real small model never scores below the offline labeler (issue 11 item 3).

Qwen2.5-Coder-0.5B-Instruct (Q4) on llama.cpp's `llama-server` is a weak labeler: on the real-world
gold set it answers `other` for almost every restaurant. The cascade must not let it lower accuracy.
The rows used are the gold rows below offline margin 0.1 (a band edge of the routing file): the
rows a cascade is most tempted to hand to the model, and where trusting this model would cost rows
(it answers `other` for 크리스피크림도넛, 나폴리 화덕 and 파파존스, which the lexicon gets right). Eight
rows keep the test within ~2 minutes on 2 cores.
Run by `.ci/run` under the `real_llm` marker; skipped when the servers are not built.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_assets.labeling import cascade
from recsys_assets.labeling.evaluate import DEFAULT_GOLD
from recsys_assets.labeling.offline import OfflineLabeler
from tests.llm_servers import skip_unless_built, start_llm_server

pytestmark = pytest.mark.real_llm
REPO = Path(__file__).resolve().parents[1]


def low_margin_rows(out: Path, edge: float = 0.1) -> int:
    """Write the gold rows whose offline margin is below ``edge`` (a band edge of the routing file)."""
    assert edge in cascade.load_routing().margin_bands
    with DEFAULT_GOLD.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    preds = OfflineLabeler().predict_many((r["name"], r["menu"], r["description"]) for r in rows)
    low = [r for r, p in zip(rows, preds, strict=True) if p.margin < edge]
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(low)
    return len(low)


def accuracy(text: str, prefix: str) -> tuple[int, int]:
    m = re.search(rf"^{prefix}[^(]*\((\d+)/(\d+)\)", text, re.M)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_cascade_with_a_weak_real_model_scores_at_least_the_lexicon(tmp_path):
    skip_unless_built("llama-server")
    gold = tmp_path / "low_margin.csv"
    n = low_margin_rows(gold)
    assert n >= 3
    with start_llm_server("llama-server", slots=1) as srv:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "RECSYS_HOME": str(tmp_path / "home"),
            "OPENAI_API_KEY": "sk-local-not-a-secret",
            "OPENAI_BASE_URL": srv.base_url,
            "RECSYS_LLM_MODEL": srv.model,
            "RECSYS_LLM_MAX_CONCURRENCY": "1",
            "RECSYS_LLM_TIMEOUT": "120",
            "RECSYS_LLM_MAX_ATTEMPTS": "2",
        }
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "recsys_assets.cli",
                "label",
                "eval",
                str(gold),
                "--labeler",
                "cascade",
                "--no-progress",
                "--no-mlflow",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"LLM: {n} rows sent" in res.stdout  # every row went to the model
    assert re.search(rf"cascade routing \([^)]+\) {re.escape(srv.model)}:", res.stdout)  # its rule
    cascade_ok, rows = accuracy(res.stdout, "accuracy")
    offline_ok, offline_rows = accuracy(res.stdout, "offline lexicon on the same rows")
    assert rows == offline_rows == n
    assert cascade_ok >= offline_ok, res.stdout
    kept = re.search(r"the lexicon's label kept on (\d+) of the rows sent", res.stdout)
    assert kept and int(kept.group(1)) >= 1, res.stdout  # the model did disagree: the rule was used
