"""`recsys recommend` and `recsys model` against a real registry built by the pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from recsys_assets import taxonomy
from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.sample_data import generate_sample

RECSYS = str(Path(sys.executable).parent / "recsys")


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommend")
    generate_sample(root / "data", n_restaurants=300, seed=21, fmt="parquet")
    env = {
        "RECSYS_HOME": str(root / "home"),
        "RECSYS_DATA_DIR": str(root / "data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'home' / 'mlflow.db'}",
        "RECSYS_LABELER": "offline",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        defs = build_defs(load_settings())
        assert (
            defs.resolve_job_def("rebuild_job")
            .execute_in_process(instance=dg.DagsterInstance.ephemeral())
            .success
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return env


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [RECSYS, *args], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def _champion(env: dict) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    return str(client.get_model_version_by_alias("industry-product-ranker", "champion").version)


def _champion_kind(env: dict) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    mv = client.get_model_version_by_alias("industry-product-ranker", "champion")
    return mv.tags.get("kind", "ranker")


def test_recommend_json_from_champion(trained_home):
    out = run(
        trained_home,
        "recommend",
        "--name",
        "치키치키뱅뱅",
        "--menu",
        "한방오리백숙|삼계탕|닭곰탕",
        "-k",
        "7",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["industry"] == "korean"  # the menu decides, not the chicken-sounding name
    assert result["model_version"] == _champion(trained_home)  # a ranker or, if it won, a baseline
    products = result["products"]
    assert len(products) == 7 and {"product_id", "name", "score"} <= set(products[0])
    scores = [p["score"] for p in products]
    assert scores == sorted(scores, reverse=True)
    if _champion_kind(trained_home) == "baseline":  # a list: 1 / rank
        assert scores == [round(1 / r, 4) for r in range(1, 8)]
    else:  # the raw ranker score is unbounded, often < 0: shown through the logistic function
        assert all(0.0 < s < 1.0 for s in scores)


def test_recommend_with_explicit_industry_and_text_output(trained_home):
    out = run(trained_home, "recommend", "--name", "새 가게", "--industry", "chinese", "-k", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("industry: chinese")
    header, *rows = out.stdout.splitlines()[1:]
    assert header.split() == ["rank", "score", "product"]
    ranks = [int(r.split()[0]) for r in rows]
    scores = [float(r.split()[1]) for r in rows]
    assert ranks == [1, 2, 3]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)


def test_recommend_rejects_unknown_industry(trained_home):
    out = run(trained_home, "recommend", "--name", "x", "--industry", "sushi")
    assert out.returncode == 2 and taxonomy.INDUSTRY_CODES[0] in out.stderr


def test_recommend_without_champion_is_a_clear_error(tmp_path):
    out = run(
        {"RECSYS_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"},
        "recommend",
        "--name",
        "x",
        "--menu",
        "짜장면",
    )
    assert out.returncode == 1 and "champion" in out.stderr


def test_model_status_and_rollback_without_previous(trained_home):
    status = run(trained_home, "model", "status")
    assert status.returncode == 0, status.stderr
    champion = _champion(trained_home)
    [row] = [line for line in status.stdout.splitlines() if "champion" in line]
    assert (
        row.split()[0] == champion
        and "promoted: " in row
        and ("ranker" in row or "baseline:" in row)
    )
    assert "ranker" in status.stdout and "rejected" not in row
    # Fast: the sqlite registry is read without importing MLflow.
    code = (
        "import sys; from recsys_assets.config import load_settings; "
        "from recsys_assets.ranking.status import versions; rows = versions(load_settings()); "
        "print(len(rows), 'mlflow' in sys.modules)"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **trained_home},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0 and probe.stdout.split()[1] == "False", probe.stderr
    assert int(probe.stdout.split()[0]) >= 1
    rollback = run(trained_home, "model", "rollback")
    assert rollback.returncode == 1 and "previous" in rollback.stderr


def test_summary_ends_with_the_promotion_decision(trained_home):
    out = run(trained_home, "summary")
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("Promotion: ") and f"champion v{_champion(trained_home)} " in last
    assert "NDCG@10 0." in last and "vs strongest baseline" in last
