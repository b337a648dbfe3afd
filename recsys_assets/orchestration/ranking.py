"""Ranking assets: dataset, training + MLflow logging, evaluation, the promotion gate, serving.

The batch-training pattern's "train, evaluate, build to the prediction server, record", as assets.
The heavy lifting lives in `recsys_assets.ranking`; these functions only wire it to Dagster.
"""

import base64
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from recsys_assets.alerts import MODEL_QUALITY, Alert
from recsys_assets.orchestration.metadata import (
    markdown_table,
    row_count,
    svg_bar_chart,
    svg_line_chart,
    table_definition,
    table_metadata,
    tidy,
)
from recsys_assets.orchestration.resources import (
    AlertsResource,
    MLflowResource,
    RecsysConfig,
    WarehouseResource,
    run_settings,
)
from recsys_assets.orchestration.retries import backoff_policy, fail_fast_unless
from recsys_assets.sources import ground_truth_dir
from recsys_assets.threads import in_thread
from recsys_assets.warehouse.tables import transaction

GROUP = "ranking"
RECOMMENDATIONS_K = 10
METRICS = ("ndcg_at_10", "recall_at_10", "recall_at_20", "map_at_10", "hit_rate_at_10")

# MLflow's store or registry can be briefly unavailable (a locked sqlite file, a restarting
# server); a later try usually works. Data and validation errors are not retried (dg.Failure).
MLFLOW_RETRY_POLICY = backoff_policy(max_retries=2, delay=15)


def _mlflow_errors() -> tuple[type[BaseException], ...]:
    from mlflow.exceptions import MlflowException

    return (MlflowException,)


# The weekly rebuild refreshes what is served. Past a week and a day, someone should look: the
# schedule is off, the daemon is down, or runs keep failing (the alerts table says which).
SERVED_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=8), warn_window=timedelta(days=7, hours=6)
)


def _png_markdown(paths: list[Path]) -> dg.MetadataValue:
    """The full-size plots (PNG, tens of kB: the UI opens them from a "[Show Markdown]" link)."""
    return dg.MetadataValue.md(
        "\n\n".join(
            f"![{p.stem}](data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()})"
            for p in paths
        )
    )


def _inline_plots(importance: dict[str, float], evaluation) -> dict[str, dg.MetadataValue]:
    """Feature importance (feature -> total gain) and NDCG@k as small SVGs the asset page shows
    without a click. The inline curve has the lines the gate compares (the model, the strongest
    baseline, industry popularity) and the oracle; the full-size PNG has every baseline."""
    lines = ("model", evaluation.strongest_baseline, "industry_popularity", "oracle")
    curve = evaluation.ndcg_curve
    curve = curve[["k", *(c for c in dict.fromkeys(lines) if c in curve.columns)]]
    return {
        "feature_importance": dg.MetadataValue.md(
            svg_bar_chart(
                "feature importance (gain)", [(n, float(g)) for n, g in importance.items()]
            )
        ),
        "ndcg_at_k_curve": dg.MetadataValue.md(
            svg_line_chart(
                "NDCG@k",
                curve["k"].tolist(),
                {c: curve[c].tolist() for c in curve.columns if c != "k"},
            )
        ),
    }


def _mlflow_run_url(experiment_id: str, run_id: str) -> str:
    """Where the run is in the MLflow UI (`make mlflow-ui` serves the local store on port 5000)."""
    return f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"


def _run_ids(context: dg.AssetExecutionContext) -> list[str]:
    run = context.dagster_run
    return list(dict.fromkeys(r for r in (run.run_id, run.parent_run_id, run.root_run_id) if r))


def _this_runs_version(context: dg.AssetExecutionContext, client, con=None) -> str:
    """The version `ranker_model` registered or reused in this run (or the run it re-executes).

    Two rebuilds can interleave, so the `challenger` alias may already point at the other run's
    model; ranker_model records its run id with the evaluation it stored (and a new version carries
    it as a tag), which is what we gate.
    """
    from recsys_assets.ranking.evaluate import evaluated_model_of_run
    from recsys_assets.ranking.registry import CHALLENGER, MODEL_NAME, version_by_alias

    if con is not None:
        key = evaluated_model_of_run(con, _run_ids(context))
        if key is not None:
            return key.split(":", 1)[0]
    for run_id in _run_ids(context):
        found = client.search_model_versions(
            f"name = '{MODEL_NAME}' and tags.dagster_run_id = '{run_id}'"
        )
        if found:
            return str(max(int(v.version) for v in found))
    version = version_by_alias(client, CHALLENGER)
    if version is None:
        raise dg.Failure(
            "no challenger version is registered: materialize ranker_model first",
            allow_retries=False,
        )
    return version


def _compiled_cache(settings, con) -> Path | None:
    """The cache `recommendations` compiles the champion into: the challenger compiled for its
    holdout scoring is not compiled again when it is served. None (LightGBM scores the holdout)
    when the rows this rebuild scores with it do not repay the compile (a small sample)."""
    from recsys_assets.ranking import sql
    from recsys_assets.ranking.compiled import COMPILE_MIN_ROWS
    from recsys_assets.ranking.recommend import compiled_cache_dir

    rows = sql.run(con, "rows_to_score").fetchall()[0][0]
    return compiled_cache_dir(settings) if rows >= COMPILE_MIN_ROWS else None


def _challenger_evaluation(con, client, version: str, dataset, settings, run_id: str | None):
    """(Evaluation, scored_here): the stored numbers of `version` on this holdout, or scored once now
    (a reused version on a rebuilt warehouse) and stored for the next step."""
    from recsys_assets.ranking.evaluate import evaluate, load_evaluation, save_evaluation
    from recsys_assets.ranking.registry import holdout_key, load_registered_ranker, model_key

    key, hkey = model_key(client, version), holdout_key(dataset)
    ev = load_evaluation(con, key, hkey)
    if ev is not None:
        return ev, False
    booster, meta = load_registered_ranker(version, settings)
    ev = evaluate(
        con,
        booster,
        dataset,
        ground_truth_dir=ground_truth_dir(settings),
        industries=meta.get("industries"),
        compiled_cache=_compiled_cache(settings, con),
    )
    save_evaluation(con, key, hkey, ev, run_id)
    return ev, True


def _reuse_version(context, con, client, version, dataset, settings, digest):
    """ranker_model when `version` has this rebuild's digest: no training, no new version; the run
    is recorded against it (so the next steps gate it) and it is the challenger again."""
    from recsys_assets.ranking.evaluate import save_evaluation
    from recsys_assets.ranking.registry import CHALLENGER, MODEL_NAME, holdout_key, model_key

    evaluation, scored = _challenger_evaluation(
        con, client, version, dataset, settings, context.run_id
    )
    if not scored:
        save_evaluation(
            con, model_key(client, version), holdout_key(dataset), evaluation, context.run_id
        )
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
    context.log.info(f"unchanged code and data: reusing version {version} (no training)")
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "model_version": version,
                "reused_version": True,
                "reuse_reason": "same code, dataset recipe, data snapshot and params as this version",
                "model_digest": digest,
                "ndcg_at_10": float(evaluation.metrics["ndcg_at_10"]),
            }
        )
    )


def _score_holdout(con, trained, dataset, settings, compiled_cache):
    """(Evaluation, seconds) of the challenger on the holdout: `evaluate` against the baselines."""
    from recsys_assets.ranking.evaluate import evaluate

    started = time.perf_counter()
    evaluation = evaluate(
        con,
        trained,
        dataset,
        ground_truth_dir=ground_truth_dir(settings),
        compiled_cache=compiled_cache,
    )
    return evaluation, time.perf_counter() - started


def _registry_and_training_rows(con, settings, digest: str):
    """(MlflowClient, the version registered with `digest` or None, the training matrices or None
    with that version). The rows load in a thread on their own cursor (DuckDB: GIL-free) while
    this one opens (on a new home: creates) the MLflow store and imports lightgbm (~1.5 s of
    Python); a reused version wastes that one read."""
    from recsys_assets.ranking.registry import configure_mlflow, find_version_by_digest
    from recsys_assets.ranking.train import import_lightgbm, load_training_matrices

    with con.cursor() as cur, in_thread("rk-train-rows", load_training_matrices, cur) as rows:
        client = configure_mlflow(settings)
        existing = find_version_by_digest(client, digest)
        if existing is None:
            import_lightgbm()
    return client, existing, (rows.result() if existing is None else None)


def _log_beside_scoring(context, con, trained, dataset, settings, digest: str):
    """(LoggedModel, Evaluation, its seconds): the holdout scoring (DuckDB, LLVM, predict: mostly
    GIL-free) runs in a thread on its own cursor while this one logs the run and the pyfunc to
    MLflow (single-threaded Python); the metrics and the registration wait for it."""
    from recsys_assets.ranking.registry import log_to_mlflow

    cache = _compiled_cache(settings, con)
    with (
        con.cursor() as cur,
        in_thread("rk-holdout", _score_holdout, cur, trained, dataset, settings, cache) as scored,
    ):
        logged = log_to_mlflow(
            con,
            trained,
            lambda: scored.result()[0],
            dataset,
            settings=settings,
            dagster_run_id=context.run_id,
            digest=digest,
        )
    evaluation, seconds = scored.result()
    return logged, evaluation, seconds


def _metrics_table(evaluation) -> pd.DataFrame:
    rows = [{"ranker": "model", **{m: evaluation.metrics.get(m) for m in METRICS}}]
    for name, values in evaluation.baselines.items():
        rows.append({"ranker": name, **{m: values.get(m) for m in METRICS}})
    return pd.DataFrame(rows)


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "sql"},
    owners=["team:recsys"],
    deps=["restaurants", "products", "orders", "restaurant_industry", "industry_top_products"],
    pool="warehouse",
    metadata=table_definition("rk_candidates"),
    description="Temporal cold-start dataset: candidates and features from orders before the cutoff, "
    "first-30-day truth of later sign-ups (rk_* tables).",
)
def ranking_dataset(recsys: RecsysConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from recsys_assets.ranking.dataset import build_ranking_dataset, save_dataset_summary

    settings = recsys.settings()  # RECSYS_RANK_CUTOFF

    with warehouse.get_connection() as con:
        con.execute("SET enable_progress_bar = false")
        try:
            dataset = build_ranking_dataset(con, cutoff=settings.ranking.cutoff)
        except ValueError as exc:  # e.g. too little history for the cutoff: retrying cannot help
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        with transaction(con):
            save_dataset_summary(con, dataset)
        rows = row_count(con, "rk_candidates")
        schema = table_metadata(con, "rk_candidates")
    counts = pd.DataFrame(sorted(dataset.counts.items()), columns=["count", "value"])
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "dagster/row_count": rows,
                "cutoff": str(dataset.cutoff),
                "data_span": f"{dataset.data_start} .. {dataset.data_end}",
                "training_snapshots": len(dataset.snapshots),
                "data_snapshot_hash": dataset.snapshot_hash,
                "candidate_recall_test": float(dataset.candidate_recall.get("test", float("nan"))),
                "counts": markdown_table(counts, 30),
                **schema,
            }
        )
    )


@dg.asset(
    group_name=GROUP,
    kinds={"lightgbm", "mlflow"},
    owners=["team:recsys"],
    deps=[ranking_dataset],
    pool="warehouse",
    retry_policy=MLFLOW_RETRY_POLICY,
    description="LightGBM ranker (rank_xendcg) trained with early stopping, logged to MLflow (params, metrics, "
    "plots, a pyfunc model) and registered as the `challenger`.",
)
@fail_fast_unless(_mlflow_errors)
def ranker_model(
    context: dg.AssetExecutionContext,
    recsys: RecsysConfig,
    warehouse: WarehouseResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from recsys_assets.ranking.dataset import load_dataset_summary
    from recsys_assets.ranking.evaluate import save_evaluation
    from recsys_assets.ranking.registry import holdout_key, model_digest, model_key
    from recsys_assets.ranking.train import DEFAULT_PARAMS, train_ranker

    settings = run_settings(recsys, mlflow=mlflow)
    with warehouse.get_connection() as con:
        dataset = load_dataset_summary(con)
        digest = model_digest("ranker", dataset, DEFAULT_PARAMS)
        client, existing, matrices = _registry_and_training_rows(con, settings, digest)
        if existing is not None:
            # Same code, recipe and data: training again would register an identical copy.
            return _reuse_version(context, con, client, existing, dataset, settings, digest)
        trained = train_ranker(con, dataset, matrices=matrices)
        logged, evaluation, evaluate_seconds = _log_beside_scoring(
            context, con, trained, dataset, settings, digest
        )
        if logged.version is not None:
            save_evaluation(
                con,
                model_key(client, logged.version),
                holdout_key(dataset),
                evaluation,
                context.run_id,
            )
    context.log.info(f"registered version {logged.version} as challenger (run {logged.run_id})")
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "model_version": logged.version,
                "reused_version": False,
                "model_digest": digest,
                "mlflow_run_id": logged.run_id,
                "mlflow_run_url": dg.MetadataValue.url(
                    _mlflow_run_url(logged.experiment_id, logged.run_id)
                ),
                "model_uri": logged.model_uri,
                "best_iteration": int(trained.best_iteration),
                "train_seconds": float(trained.train_seconds),
                # The challenger's one holdout scoring (ranker_evaluation and the gate reuse it).
                "evaluate_seconds": float(evaluate_seconds),
                "features": len(trained.features),
                "ndcg_at_10": float(evaluation.metrics["ndcg_at_10"]),
            }
        )
    )


@dg.asset(
    group_name=GROUP,
    kinds={"lightgbm", "mlflow"},
    owners=["team:recsys"],
    deps=[ranker_model],
    pool="warehouse",
    retry_policy=MLFLOW_RETRY_POLICY,
    description="The challenger's numbers on the cold-start holdout (scored once, by ranker_model) "
    "against every baseline (industry, global and first-30-day popularity, menu-token association, "
    "menu kNN) with paired bootstrap CIs, the oracle on generated data; per-industry breakdown.",
)
@fail_fast_unless(_mlflow_errors)
def ranker_evaluation(
    context: dg.AssetExecutionContext,
    recsys: RecsysConfig,
    warehouse: WarehouseResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    from types import SimpleNamespace

    from recsys_assets.ranking.dataset import load_dataset_summary
    from recsys_assets.ranking.registry import (
        configure_mlflow,
        evaluation_plots,
        load_registered_booster,
        logged_plots,
    )

    settings = run_settings(recsys, mlflow=mlflow)
    client = configure_mlflow(settings)
    with warehouse.get_connection() as con:
        dataset = load_dataset_summary(con)
        version = _this_runs_version(context, client, con)
        # ranker_model stored the challenger's numbers: scored once per rebuild, read here.
        evaluation, scored_here = _challenger_evaluation(
            con, client, version, dataset, settings, context.run_id
        )
    trained = None
    importance = evaluation.feature_importance
    if not importance:  # stored by an older version: read the booster
        booster = load_registered_booster(version, settings)
        trained = SimpleNamespace(booster=booster, features=booster.feature_name())
        gains = booster.feature_importance(importance_type="gain")
        importance = dict(zip(booster.feature_name(), map(float, gains), strict=True))
    table = _metrics_table(evaluation)
    with tempfile.TemporaryDirectory() as tmp:
        # ranker_model drew them for the training run: read them there (matplotlib ~1 CPU-s).
        pngs = logged_plots(client, version, Path(tmp)) or evaluation_plots(
            trained, evaluation, Path(tmp)
        )
        plots = {
            **_inline_plots(importance, evaluation),
            "plots_full_size": _png_markdown(pngs),
        }
    per_industry = evaluation.per_industry
    industry_pop = evaluation.baselines["industry_popularity"]["ndcg_at_10"]
    best = evaluation.strongest_baseline
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "model_version": version,
                "evaluation_reused": not scored_here,
                "metrics_vs_baselines": markdown_table(table, 10),
                "ratio_vs_baselines": markdown_table(_ratio_table(evaluation), 10),
                "strongest_baseline": best,
                "ndcg_at_10": float(evaluation.metrics["ndcg_at_10"]),
                "strongest_baseline_ndcg_at_10": float(evaluation.baselines[best]["ndcg_at_10"]),
                "ratio_vs_strongest_baseline_ci_low": float(evaluation.ratio_ci[best]["ci_low"]),
                "industry_popularity_ndcg_at_10": float(industry_pop),
                "margin_vs_industry_popularity": float(evaluation.margin_vs_industry_popularity),
                "oracle_ndcg_at_10": float(
                    evaluation.baselines.get("oracle", {}).get("ndcg_at_10", float("nan"))
                ),
                "test_queries_evaluated": int(evaluation.queries_evaluated),
                "test_queries_without_positives": int(evaluation.queries_without_positives),
                "candidate_recall": float(evaluation.candidate_recall),
                "per_industry": markdown_table(per_industry, len(per_industry)),
                **plots,
            }
        )
    )


def _ratio_table(evaluation) -> pd.DataFrame:
    """Model / baseline NDCG@10 with the paired bootstrap 95 % CI, one row per baseline."""
    return pd.DataFrame(
        [
            {
                "baseline": name,
                "baseline_ndcg_at_10": round(evaluation.baselines[name]["ndcg_at_10"], 4),
                "ratio": round(ci["ratio"], 3),
                "ci_low": round(ci["ci_low"], 3),
                "ci_high": round(ci["ci_high"], 3),
            }
            for name, ci in evaluation.ratio_ci.items()
        ]
    )


@dg.asset(
    group_name=GROUP,
    kinds={"mlflow"},
    owners=["team:recsys"],
    deps=[ranker_evaluation],
    pool="warehouse",
    freshness_policy=SERVED_FRESHNESS,
    retry_policy=MLFLOW_RETRY_POLICY,
    check_specs=[
        dg.AssetCheckSpec(
            "promotion_gate",
            asset="champion_model",
            description="Warns when the gate keeps an old champion over this rebuild's choice.",
        )
    ],
    description="The promotion gate: serves whichever is best on the current holdout. The ranker is "
    "the candidate only if its NDCG@10 CI against the strongest baseline lies above 1, else that "
    "baseline (as a pyfunc); the candidate becomes `champion` if it beats the champion (score cached "
    "per holdout) by the margin and meets the floor; the old champion keeps `previous`.",
)
@fail_fast_unless(_mlflow_errors)
def champion_model(
    context: dg.AssetExecutionContext,
    recsys: RecsysConfig,
    warehouse: WarehouseResource,
    mlflow: MLflowResource,
    alerts: AlertsResource,
) -> dg.MaterializeResult:
    from recsys_assets.ranking.dataset import load_dataset_summary
    from recsys_assets.ranking.registry import (
        CHALLENGER,
        CHAMPION,
        MODEL_NAME,
        PREVIOUS,
        configure_mlflow,
        promote_if_better,
        save_decision,
        version_by_alias,
    )

    settings = run_settings(recsys, mlflow=mlflow)
    client = configure_mlflow(settings)
    with warehouse.get_connection() as con:
        dataset = load_dataset_summary(con)
        challenger = _this_runs_version(context, client, con)
        # ranker_evaluation's numbers, not a new evaluate(): the challenger is scored once.
        evaluation, scored_here = _challenger_evaluation(
            con, client, challenger, dataset, settings, context.run_id
        )
        decision = promote_if_better(
            con, challenger, dataset, settings=settings, evaluation=evaluation
        )
        save_decision(con, decision)
    aliases = {a: version_by_alias(client, a) for a in (CHAMPION, CHALLENGER, PREVIOUS)}
    new_in_this_run = client.get_model_version(MODEL_NAME, challenger).tags.get(
        "dagster_run_id"
    ) in _run_ids(context)
    served_as_decided = decision.champion_version in (
        decision.challenger_version,
        decision.candidate_version,
    )
    if new_in_this_run and decision.champion_version != challenger:
        alerts.record(
            Alert(
                kind=MODEL_QUALITY,
                message=f"challenger v{challenger} not served: {decision.reason}",
                run_id=context.run_id,
                job_name=context.job_name,
                step_key="champion_model",
                remedy=f"v{decision.champion_version or 'none'} ({decision.champion_kind}) keeps "
                "serving. Look at the data and features (ranker_evaluation per-industry and "
                "baseline tables) or tune the model; a rerun alone will not change the decision.",
            ),
        )
        context.log.warning(f"promotion gate: v{challenger} not served: {decision.reason}")
    metrics = {k: v for k, v in decision.metrics.items() if isinstance(v, (int, float))}
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "promoted": decision.promoted,
                "decision_reason": decision.reason,
                "challenger_version": decision.challenger_version,
                "challenger_reused": not new_in_this_run,
                "challenger_scored_by_gate": scored_here,
                "candidate": f"v{decision.candidate_version} ({decision.candidate_kind})",
                "champion_version_before": decision.champion_version_before or "none",
                "champion_version": aliases[CHAMPION] or "none",
                "champion_kind": decision.champion_kind,
                "previous_version": aliases[PREVIOUS] or "none",
                **{f"gate_{k}": float(v) for k, v in metrics.items()},
            }
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="promotion_gate",
                passed=served_as_decided,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"reason": decision.reason},
            )
        ],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "parquet", "mlflow"},
    owners=["team:recsys"],
    deps=[champion_model, "restaurant_industry"],
    pool="warehouse",
    freshness_policy=SERVED_FRESHNESS,
    retry_policy=MLFLOW_RETRY_POLICY,
    metadata=table_definition("recommendations"),
    description=f"Top-{RECOMMENDATIONS_K} products per restaurant from the champion, in DuckDB "
    "`recommendations` and exports/recommendations.parquet (readers never need the warehouse lock).",
)
@fail_fast_unless(_mlflow_errors)
def recommendations(
    recsys: RecsysConfig, warehouse: WarehouseResource, mlflow: MLflowResource
) -> dg.MaterializeResult:
    from recsys_assets.ranking.recommend import NoChampionError, write_recommendations

    settings = run_settings(recsys, mlflow=mlflow)
    with warehouse.get_connection() as con:
        try:
            version = write_recommendations(
                con, "recommendations", k=RECOMMENDATIONS_K, settings=settings
            )
        except NoChampionError as exc:
            raise dg.Failure(f"no champion model to serve: {exc}", allow_retries=False) from exc
        export = settings.exports_dir / "recommendations.parquet"
        export.parent.mkdir(parents=True, exist_ok=True)
        tmp = export.with_suffix(".parquet.tmp")
        con.execute("COPY recommendations TO ? (FORMAT parquet)", [str(tmp)])
        tmp.replace(export)  # atomic: a reader sees the old file or the new one, never half
        rows, restaurants = con.execute(
            "SELECT count(*), count(DISTINCT restaurant_id) FROM recommendations"
        ).fetchall()[0]
        schema = table_metadata(con, "recommendations")
        sample = con.execute(
            "SELECT r.restaurant_id, r.rank, p.name, round(r.score, 3) AS score FROM recommendations r "
            "JOIN products p USING (product_id) ORDER BY r.restaurant_id, r.rank LIMIT 10"
        ).df()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(rows),
            "model_version": version if rows else "",
            "restaurants": int(restaurants),
            "parquet_export": dg.MetadataValue.path(str(export)),
            "preview": markdown_table(sample, 10),
            **schema,
        }
    )


assets = [ranking_dataset, ranker_model, ranker_evaluation, champion_model, recommendations]
asset_checks: list = []
