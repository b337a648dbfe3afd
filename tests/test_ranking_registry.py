"""MLflow logging, the promotion gate, rollback and the pyfunc served from the registry.

Real DuckDB and a real MLflow sqlite store, both in tmp_path. One scenario walks the registry through
its life (first champion, better challenger, worse challenger, rollback) because each step depends
on the aliases the previous one left.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from recsys_assets.config import load_settings
from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import recommend as rec
from recsys_assets.ranking import registry as reg
from recsys_assets.ranking.evaluate import evaluate
from recsys_assets.ranking.features import FEATURES
from recsys_assets.ranking.train import TrainedRanker, train_ranker
from tests.test_ranking_dataset import make_synthetic_warehouse

_ORIGINAL_URI = os.environ.get("MLFLOW_TRACKING_URI")


def _booster_on(frame: pd.DataFrame, features: list[str], labels: np.ndarray, rounds: int = 20):
    groups = frame.groupby("restaurant_id", sort=False).size().to_numpy()
    data = lgb.Dataset(
        frame[features].astype("float64"), label=labels, group=groups, feature_name=features
    )
    params = {
        "objective": "lambdarank",
        "verbosity": -1,
        "seed": 1,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
    }
    return TrainedRanker(
        lgb.train(params, data, num_boost_round=rounds), features, params, rounds, 0.0
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("rk-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("RECSYS_HOME", str(home))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.delenv("RECSYS_PROMOTION_MARGIN", raising=False)
    mp.delenv("RECSYS_NDCG_FLOOR", raising=False)
    settings = load_settings()
    con = make_synthetic_warehouse(home / "w.duckdb", n_restaurants=300, seed=7)
    dset = ds.build_ranking_dataset(con)
    good = train_ranker(con, dset)
    train = ds.load_split(con, "train")
    labels = train["relevance"].to_numpy()
    # Weak: ranks by one popularity feature. Worst: learned to put the products bought on the bottom.
    weak = _booster_on(train, ["global_penetration"], labels)
    worst = _booster_on(train, list(FEATURES), (labels == 0).astype(int))
    yield settings, con, dset, good, weak, worst
    con.close()
    mp.undo()
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; do not leak our tmp store to other tests.
    import mlflow

    mlflow.set_tracking_uri(_ORIGINAL_URI)
    mlflow.set_registry_uri(_ORIGINAL_URI)


def _log(con, trained, dset, settings, run_id=None):
    ev = evaluate(con, trained, dset)
    return reg.log_to_mlflow(con, trained, ev, dset, settings, dagster_run_id=run_id), ev


def test_registry_lifecycle(env, monkeypatch):
    """Longer than 80 lines on purpose: one scenario, because each step (baseline first champion,
    better ranker, worse ranker, serving, rollback) starts from the aliases the previous one left."""
    import mlflow

    settings, con, dset, good, weak, worst = env

    # 1. A weak first model does not beat the strongest baseline: that baseline becomes champion.
    v1, ev1 = _log(con, weak, dset, settings, run_id="dagster-run-1")
    run = mlflow.get_run(v1.run_id)
    assert run.data.tags["dagster_run_id"] == "dagster-run-1"
    assert run.data.tags["data_snapshot_hash"] == dset.snapshot_hash
    _assert_run_explains_itself(run, con, dset, fitted=False)  # hand-made booster: no fit counts
    for name in (
        "ndcg_at_10",
        "recall_at_10",
        "recall_at_20",
        "map_at_10",
        "hit_rate_at_10",
        "industry_popularity_ndcg_at_10",
        "global_popularity_ndcg_at_10",
        "industry_popularity_map_at_10",
        "menu_knn_ndcg_at_10",
        "ndcg_ratio_vs_industry_new_popularity_ci_low",
    ):
        assert name in run.data.metrics, name
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(v1.run_id, "evaluation")}
    assert {
        "evaluation/feature_importance.png",
        "evaluation/ndcg_at_k.png",
        "evaluation/per_industry.csv",
    } <= arts
    assert reg.aliases(settings) == {"challenger": v1.version}
    d1 = reg.promote_if_better(con, v1.version, dset, settings, evaluation=ev1)
    assert d1.promoted and d1.champion_version_before is None
    assert d1.candidate_kind == "baseline" and d1.champion_version != v1.version
    vb = d1.champion_version
    assert reg.aliases(settings) == {"challenger": v1.version, "champion": vb}

    # 2. The good model beats the baseline champion (its method, scored on the current holdout).
    v2, ev2 = _log(con, good, dset, settings, run_id="dagster-run-2")
    _assert_run_explains_itself(mlflow.get_run(v2.run_id), con, dset, fitted=True)
    d2 = reg.promote_if_better(con, v2.version, dset, settings, evaluation=ev2)
    assert d2.promoted, d2.reason
    assert d2.champion_version_before == vb
    assert d2.metrics["champion_ndcg_at_10"] == pytest.approx(
        ev2.baselines[d1.strongest_baseline]["ndcg_at_10"], abs=1e-9
    )
    assert d2.metrics["challenger_ndcg_at_10"] > d2.metrics["champion_ndcg_at_10"]
    assert d2.metrics["challenger_ndcg_at_10"] > ev2.baselines["industry_popularity"]["ndcg_at_10"]
    assert reg.aliases(settings) == {
        "challenger": v2.version,
        "champion": v2.version,
        "previous": vb,
    }

    # 3. A worse model is rejected (scored here, without a stored evaluation); the baseline it loses
    # to does not beat the champion either, so aliases (except challenger) do not move.
    v3, _ = _log(con, worst, dset, settings)
    d3 = reg.promote_if_better(con, v3.version, dset, settings)
    assert not d3.promoted and d3.candidate_version == vb
    assert f"champion v{v2.version}" in d3.reason and "does not significantly beat" in d3.reason
    assert reg.aliases(settings) == {
        "challenger": v3.version,
        "champion": v2.version,
        "previous": vb,
    }
    # Re-submitting the champion itself is a no-op.
    d3b = reg.promote_if_better(con, v2.version, dset, settings)
    assert not d3b.promoted and "already the champion" in d3b.reason
    client = reg.configure_mlflow(settings)
    tags = {
        v: client.get_model_version(reg.MODEL_NAME, v).tags
        for v in (v1.version, v2.version, v3.version)
    }
    assert tags[v1.version]["promotion_decision"] == "rejected"
    assert tags[v2.version]["promotion_decision"] == "promoted"
    assert tags[v3.version]["promotion_decision"] == "rejected"
    assert tags[v3.version]["promotion_reason"] == d3.reason
    assert client.get_model_version(reg.MODEL_NAME, vb).tags["demoted_by"] == v2.version
    # Each version's description says how it was trained (or which baseline it is) and, last,
    # what the gate decided the last time it was a candidate.
    desc = {
        v: client.get_model_version(reg.MODEL_NAME, v).description
        for v in (v1.version, vb, v2.version, v3.version)
    }
    assert desc[v3.version].endswith(f"Promotion gate: rejected, not served: {d3.reason}")
    assert desc[v2.version].endswith(f"Promotion gate: promoted to champion: {d2.reason}")
    assert desc[v1.version].endswith(f"Promotion gate: rejected, not served: {d1.reason}")
    assert desc[v1.version].startswith(f"Trained on data snapshot {dset.snapshot_hash}")
    assert "Dagster run dagster-run-1" in desc[v1.version]
    assert f"strongest baseline {d1.strongest_baseline}" in desc[v1.version]
    # The baseline was promoted by d1, then v3's candidate (rejected: v2 serves).
    assert desc[vb].startswith(f"Baseline {d1.strongest_baseline}: ")
    assert desc[vb].endswith(f"Promotion gate: rejected, not served: {d3.reason}")
    assert all(d.count("Promotion gate:") == 1 for d in desc.values())
    baseline_run = mlflow.get_run(client.get_model_version(reg.MODEL_NAME, vb).run_id)
    assert baseline_run.info.run_name == f"baseline-{d1.strongest_baseline}"
    assert baseline_run.data.tags["mlflow.source.name"].endswith(":champion_model")
    assert baseline_run.data.tags["mlflow.note.content"] == desc[vb].split("\n\n")[0]
    assert client.get_registered_model(reg.MODEL_NAME).description == reg.MODEL_DESCRIPTION
    experiment = client.get_experiment_by_name(reg.EXPERIMENT_NAME)
    assert experiment.tags["mlflow.note.content"] == reg.EXPERIMENT_DESCRIPTION

    # 4. The champion serves from the registry alone (pyfunc round trip).
    model = mlflow.pyfunc.load_model("models:/industry-product-ranker@champion")
    out = model.predict(
        pd.DataFrame(
            {
                "industry": ["chicken", "chicken", None],
                "name": ["", "", "바삭치킨 역삼점"],
                "menu": ["", "치즈볼", "후라이드치킨|양념치킨|치즈볼"],
                "k": [5, 5, 8],
            }
        )
    )
    assert list(out.columns) == [
        "request_index",
        "restaurant_id",
        "industry",
        "label_confidence",
        "rank",
        "product_id",
        "name",
        "score",
    ]
    assert out.groupby("request_index").size().to_dict() == {0: 5, 1: 5, 2: 8}
    assert out.groupby("request_index")["rank"].apply(list).tolist() == [
        [1, 2, 3, 4, 5],
        [1, 2, 3, 4, 5],
        list(range(1, 9)),
    ]
    assert (
        out.loc[out.request_index == 2, "industry"].iloc[0] == "chicken"
    )  # labeled from name + menu
    assert (out["name"] != "").all()
    # The menu matters: a chicken place selling 치즈볼 gets mozzarella (P006) higher than one without.
    rank_of = {
        i: dict(zip(g["product_id"], g["rank"], strict=True))
        for i, g in out.groupby("request_index")
    }
    assert rank_of[1].get("P006", 99) < rank_of[0].get("P006", 99)

    r = rec.recommend("바삭치킨", "후라이드치킨|치즈볼", k=3, settings=settings)
    assert r["model_version"] == v2.version and r["industry"] == "chicken"
    assert len(r["products"]) == 3 and set(r["products"][0]) == {"product_id", "name", "score"}
    scores = [p["score"] for p in r["products"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)  # the ranker's raw score through the logistic

    # The CLI fast path: a fresh process (empty in-memory cache) reads the alias with sqlite3 and the
    # artefacts from the on-disk cache the first load filled, without importing MLflow's loader.
    rec._CACHE.clear()
    with monkeypatch.context() as mp:
        mp.setattr(reg, "configure_mlflow", lambda *a, **k: pytest.fail("fast path used MLflow"))
        _server, version = rec.load_champion(settings)
    assert version == v2.version
    assert any(settings.home.joinpath("cache", "ranker").glob(f"*-v{v2.version}-{v2.run_id}"))
    again = rec.recommend("바삭치킨", "후라이드치킨|치즈볼", k=3, settings=settings)
    assert again == r

    allrec = rec.recommend_for_restaurants(con, k=4, settings=settings)
    n_rest = con.execute("SELECT count(*) FROM restaurants").fetchall()[0][0]
    assert allrec["restaurant_id"].nunique() == n_rest
    assert allrec.groupby("restaurant_id").size().eq(4).all()
    assert set(allrec["model_version"]) == {v2.version}

    # 5. Rollback: champion <- previous; the demoted version is tagged; previous is consumed.
    rb = reg.rollback(settings, reason="bad recommendations reported")
    assert rb == {"champion": vb, "demoted": v2.version}
    assert reg.aliases(settings) == {"challenger": v3.version, "champion": vb}
    demoted = client.get_model_version(reg.MODEL_NAME, v2.version).tags
    assert (
        demoted["rolled_back"] == "true"
        and demoted["rollback_reason"] == "bad recommendations reported"
    )
    with pytest.raises(LookupError):
        reg.rollback(settings)
    # After the rollback, recommendations come from the restored champion (the baseline), whose
    # score is 1 / rank.
    restored = rec.recommend("바삭치킨", "후라이드치킨|치즈볼", k=3, settings=settings)
    assert restored["model_version"] == vb
    assert [p["score"] for p in restored["products"]] == [1.0, 0.5, 0.3333]


def _assert_run_explains_itself(run, con, dset, fitted: bool) -> None:
    """Run name, source, description, dataset inputs with digests, and counts that agree."""
    assert re.fullmatch(r"rebuild-\d{4}-\d{2}-\d{2}-dagster-", run.info.run_name)
    assert run.data.tags["mlflow.source.name"].endswith(":ranker_model")
    assert run.data.tags["mlflow.note.content"].startswith("Trained on data snapshot")
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"rk_candidates[train]", "rk_candidates[valid]", "rk_candidates[test]"}
    for split in ("train", "valid", "test"):
        logged = inputs[f"rk_candidates[{split}]"]
        rows, digest = ds.split_digest(con, split)
        assert logged.dataset.digest == digest and len(digest) == 16
        assert {t.key: t.value for t in logged.tags}["rows"] == str(rows)
        assert rows == dset.counts[f"{split}_candidate_rows"]
    # Every count has one meaning: each narrower set of queries is at most the wider one.
    m = {k.removeprefix("count_"): v for k, v in run.data.metrics.items() if k.startswith("count_")}
    for split in ("train", "valid"):
        assert (
            m[f"{split}_queries"]
            >= m[f"{split}_queries_with_positives"]
            >= m[f"{split}_queries_with_positive_candidates"]
            > 0
        )
        if fitted:  # below MAX_QUERIES, LightGBM fits every query with a positive candidate
            assert m[f"fitted_{split}_queries"] == m[f"{split}_queries_with_positive_candidates"]
            assert m[f"fitted_{split}_rows"] <= m[f"{split}_candidate_rows"]


def test_split_digest_follows_the_rows(env):
    con = env[1]
    before = ds.split_digest(con, "test")
    assert ds.split_digest(con, "test") == before  # order-insensitive, stable
    con.execute("CREATE TEMP TABLE rk_backup AS SELECT * FROM rk_candidates")
    try:
        con.execute(
            "UPDATE rk_candidates SET relevance = relevance + 1 WHERE rowid = "
            "(SELECT min(rowid) FROM rk_candidates WHERE split = 'test')"
        )
        assert ds.split_digest(con, "test")[0] == before[0]
        assert ds.split_digest(con, "test")[1] != before[1]
    finally:
        con.execute("CREATE OR REPLACE TABLE rk_candidates AS SELECT * FROM rk_backup")
        con.execute("DROP TABLE rk_backup")
    assert ds.split_digest(con, "test") == before


def test_floor_blocks_and_a_worse_ranker_serves_the_baseline(env, tmp_path, monkeypatch):
    _settings, con, dset, good, _weak, worst = env
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))  # a fresh, empty registry
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # exported by mlflow.set_tracking_uri
    fresh = load_settings()
    v, ev = _log(con, good, dset, fresh)
    monkeypatch.setenv("RECSYS_NDCG_FLOOR", "0.999")
    d = reg.promote_if_better(con, v.version, dset, load_settings(), evaluation=ev)
    assert not d.promoted and "below the floor 0.999" in d.reason
    assert "champion" not in reg.aliases(fresh)
    with pytest.raises(rec.NoChampionError):
        rec.recommend("치킨집", "후라이드", settings=fresh)
    monkeypatch.delenv("RECSYS_NDCG_FLOOR")
    # A ranker worse than a simple list never serves: the strongest baseline does.
    vw, evw = _log(con, worst, dset, fresh)
    dw = reg.promote_if_better(con, vw.version, dset, fresh, evaluation=evw)
    assert dw.promoted and dw.candidate_kind == "baseline" and dw.champion_version != vw.version
    assert reg.promote_if_better(con, v.version, dset, fresh, evaluation=ev).promoted


def test_logged_plots_are_the_plots_drawn_again(env, tmp_path):
    """ranker_evaluation reads the PNGs the training run logged instead of drawing them again:
    they are the same bytes; a version whose run lacks them gives None (then they are drawn)."""
    import mlflow

    settings, con, dset, good, _weak, _worst = env
    logged, ev = _log(con, good, dset, settings, run_id="dagster-run-plots")
    client = mlflow.MlflowClient()
    read = reg.logged_plots(client, logged.version, tmp_path / "read")
    (tmp_path / "drawn").mkdir()
    drawn = reg.evaluation_plots(good, ev, tmp_path / "drawn")
    assert read is not None
    assert [p.name for p in read] == [p.name for p in drawn] == list(reg.PLOT_FILES)
    assert [p.read_bytes() for p in read] == [p.read_bytes() for p in drawn]
    client.delete_model_version_tag(reg.MODEL_NAME, logged.version, "run_id")
    assert reg.logged_plots(client, logged.version, tmp_path / "none") is None


def _former_log_to_mlflow(con, trained, evaluation, dataset, settings, dagster_run_id):
    """The oracle: log_to_mlflow as it was before the holdout scoring ran beside it (main
    278f82f): the description at the start, the metrics and plots before the pyfunc."""
    import tempfile
    from pathlib import Path

    import mlflow

    client = reg.configure_mlflow(settings)
    exp_id = reg._experiment_id(client, settings)
    tags = {
        "data_snapshot_hash": dataset.snapshot_hash,
        "cutoff": str(dataset.cutoff),
        "kind": "ranker",
        "model_digest": reg.model_digest("ranker", dataset, trained.params),
        "dagster_run_id": dagster_run_id,
    }
    trained_on = reg._trained_on(dataset, evaluation, dagster_run_id)
    run_tags = {
        **tags,
        "mlflow.source.name": "recsys_assets.orchestration.ranking:ranker_model",
        "mlflow.source.type": "JOB",
        "mlflow.note.content": trained_on,
    }
    with (
        tempfile.TemporaryDirectory(prefix="rk-mlflow-") as tmp,
        mlflow.start_run(
            experiment_id=exp_id, run_name=reg.run_name(dagster_run_id), tags=run_tags
        ) as run,
    ):
        reg._log_datasets(con)
        mlflow.log_params(
            {
                k: (json.dumps(v) if isinstance(v, list | dict) else v)
                for k, v in reg._run_params(trained, dataset).items()
            }
        )
        mlflow.log_metrics(reg._run_metrics(trained, evaluation, dataset))
        plots = reg.evaluation_plots(trained, evaluation, Path(tmp))
        reg._log_evaluation_artifacts(plots, evaluation, dataset, Path(tmp))
        info = reg._log_ranker_pyfunc(con, trained, dataset, Path(tmp) / "serving")
        version = reg._register_challenger(
            client, info.model_uri, tags, trained_on, run.info.run_id, evaluation
        )
    return reg.LoggedModel(run.info.run_id, info.model_uri, version, exp_id)


# What differs between two loggings of the same model: ids and clocks.
_VOLATILE = re.compile(
    r"^(run_id|model_uuid|model_id|utc_time_created|artifact_path|mlflow\.log-model\.history)$"
)


def _files(root) -> dict[str, object]:
    """Relative path -> bytes (MLmodel: its YAML without the ids, the clock and the temporary
    directory)."""
    import yaml

    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            rel = p.relative_to(root).as_posix()
            if p.name == "MLmodel":
                # artifacts' "uri": where they were written, a temporary directory
                text = re.sub(r"rk-mlflow-[^/]+", "rk-mlflow-*", p.read_text(encoding="utf-8"))
                doc = yaml.safe_load(text)
                out[rel] = {k: v for k, v in doc.items() if not _VOLATILE.match(k)}
            else:
                out[rel] = p.read_bytes()
    return out


def _logged_outputs(settings, logged, where) -> dict:
    """Everything one logging left in MLflow, minus ids and clocks: the run (params, metrics and
    their history, tags, dataset inputs, evaluation artefacts), the logged model (params, metrics,
    tags, files) and the registered version (tags, description, aliases)."""
    import mlflow

    client = reg.configure_mlflow(settings)
    run = client.get_run(logged.run_id)
    model_id = run.outputs.model_outputs[0].model_id
    lm = client.get_logged_model(model_id)
    mv = client.get_model_version(reg.MODEL_NAME, logged.version)
    evaluation_dir = client.download_artifacts(logged.run_id, "evaluation", str(where / "run"))
    model_dir = mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(where / "model"))
    return {
        "params": run.data.params,
        "metrics": run.data.metrics,
        "history": {k: len(client.get_metric_history(logged.run_id, k)) for k in run.data.metrics},
        "tags": {k: v for k, v in run.data.tags.items() if not _VOLATILE.match(k)},
        "inputs": sorted(
            (i.dataset.name, i.dataset.digest, sorted((t.key, t.value) for t in i.tags))
            for i in run.inputs.dataset_inputs
        ),
        "run_name": run.info.run_name,
        "status": run.info.status,
        "evaluation_files": _files(Path(evaluation_dir)),
        "model_params": lm.params,
        "model_metrics": sorted((m.key, m.value, m.step) for m in lm.metrics or []),
        "model_tags": {k: v for k, v in lm.tags.items() if not _VOLATILE.match(k)},
        "model_files": _files(Path(model_dir)),
        "version_tags": {k: v for k, v in mv.tags.items() if not _VOLATILE.match(k)},
        "version_description": mv.description,
        "aliases": reg.aliases(settings),
    }


def test_logging_beside_the_holdout_scoring_leaves_what_the_former_order_left(
    env, tmp_path, monkeypatch
):
    """ranker_model scores the holdout in a thread while log_to_mlflow logs what does not need it:
    the run, the logged model and the version are those of the former order (the oracle above),
    including the metrics MLflow links to the model, and the Evaluation is the one scored here."""
    from recsys_assets.threads import in_thread

    _settings, con, dset, good, _weak, _worst = env
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    stores = {}
    for name in ("former", "threaded"):
        monkeypatch.setenv("RECSYS_HOME", str(tmp_path / name))  # a fresh registry each
        stores[name] = load_settings()
    expected = evaluate(con, good, dset)
    former = _former_log_to_mlflow(con, good, expected, dset, stores["former"], "dagster-run-9")
    with con.cursor() as cur, in_thread("t-holdout", evaluate, cur, good, dset) as scored:
        threaded = reg.log_to_mlflow(
            con, good, scored.result, dset, stores["threaded"], dagster_run_id="dagster-run-9"
        )
    assert json.dumps(scored.result().to_json()) == json.dumps(expected.to_json())
    old = _logged_outputs(stores["former"], former, tmp_path / "former-files")
    new = _logged_outputs(stores["threaded"], threaded, tmp_path / "threaded-files")
    assert len(old["metrics"]) > 50 and len(old["model_metrics"]) == len(old["metrics"])
    assert set(old["history"].values()) == {1} and old["model_files"]
    for key in old:
        assert new[key] == old[key], key


def test_a_failed_scoring_leaves_a_failed_run_and_no_version(env, tmp_path, monkeypatch):
    """The error of the holdout scoring surfaces from log_to_mlflow itself; nothing is registered."""
    import mlflow

    _settings, con, dset, good, _weak, _worst = env
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    fresh = load_settings()

    def scoring_failed():
        raise KeyError("booster needs features the frame lacks: ['x']")

    with pytest.raises(KeyError, match="features the frame lacks"):
        reg.log_to_mlflow(con, good, scoring_failed, dset, fresh, dagster_run_id="dagster-run-f")
    client = reg.configure_mlflow(fresh)
    runs = mlflow.search_runs(experiment_names=[reg.EXPERIMENT_NAME], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert client.search_model_versions(f"name = '{reg.MODEL_NAME}'") == []
    assert reg.aliases(fresh) == {}
