"""MLflow tracking, the model registry and the promotion gate.

- Every training run logs params, the input snapshot hash, metrics named as the dashboards expect
  (ndcg_at_10, industry_popularity_ndcg_at_10, oracle_ndcg_at_10, ...), plots, the per-industry table
  and the servable pyfunc, then registers a version of `industry-product-ranker` aliased `challenger`.
- `promote_if_better` re-scores BOTH the challenger and the current champion (their registered
  boosters) on the CURRENT holdout, because a champion's stored metrics came from an older holdout
  and are not comparable. The challenger becomes `champion` only if it beats the champion by the
  margin, beats industry popularity and meets the service-level floor; the old champion keeps
  `previous` so `rollback()` is one call. A worse model never becomes champion.
- Aliases only, never stages (stages are deprecated in MLflow).
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from recsys_assets.config import (
    DEFAULT_NDCG_FLOOR,
    DEFAULT_PROMOTION_MARGIN,
    Settings,
    load_settings,
    set_process_env,
)
from recsys_assets.ranking.names import CHALLENGER, CHAMPION, EXPERIMENT_NAME, MODEL_NAME, PREVIOUS
from recsys_assets.safe_csv import write_csv

__all__ = ["CHALLENGER", "CHAMPION", "EXPERIMENT_NAME", "MODEL_NAME", "PREVIOUS"]  # re-exported
__all__ += ["DEFAULT_NDCG_FLOOR", "DEFAULT_PROMOTION_MARGIN"]  # defined in config (the settings)


@dataclass
class LoggedModel:
    run_id: str
    model_uri: str
    version: str | None
    experiment_id: str = ""


@dataclass
class GateDecision:
    promoted: bool
    reason: str
    challenger_version: str
    champion_version_before: str | None
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def configure_mlflow(settings: Settings | None = None):
    """Point MLflow at the settings' sqlite store; returns an MlflowClient."""
    import mlflow
    from mlflow import MlflowClient

    settings = settings or load_settings()
    # Per-file download progress bars would flood logs when the gate fetches model versions.
    set_process_env("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false", overwrite=False)
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# What the MLflow UI shows on the experiment and the registered model ("mlflow.note.content" is the
# description field of experiments and runs). Kept here, next to what they describe.
EXPERIMENT_DESCRIPTION = (
    "Weekly rebuilds of the cold-start ranker of recsys-assets: a LightGBM lambdarank that orders "
    "the food-supply catalog for a restaurant that just signed up. One run per Dagster "
    "`ranker_model` materialization, named rebuild-<date>-<Dagster run id>; metrics are on the "
    "cold-start holdout (NDCG@10 against industry and global popularity), the training data is "
    "under Datasets, plots and the per-industry table under Artifacts > evaluation."
)
MODEL_DESCRIPTION = (
    "Top products for a new restaurant from its name and menu (pyfunc: industry, name, menu, k). "
    "Serve `@champion`; `@challenger` is the latest trained version, `@previous` the champion it "
    "replaced (`recsys model rollback`). A version becomes champion only through the promotion "
    "gate; each version's description says what the gate decided and why."
)
_GATE_HEADING = "Promotion gate:"


def _experiment_id(client, settings: Settings) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT_NAME)
    if exp is not None:
        exp_id = exp.experiment_id
        if exp.tags.get("mlflow.note.content") == EXPERIMENT_DESCRIPTION:
            return exp_id
    else:
        root = settings.mlflow_artifact_root
        root.mkdir(parents=True, exist_ok=True)
        exp_id = client.create_experiment(
            EXPERIMENT_NAME, artifact_location=root.resolve().as_uri()
        )
    client.set_experiment_tag(exp_id, "mlflow.note.content", EXPERIMENT_DESCRIPTION)
    return exp_id


def run_name(dagster_run_id: str | None, when: datetime | None = None) -> str:
    """`rebuild-<UTC date>-<first 8 chars of the Dagster run id>` ("adhoc" outside Dagster)."""
    day = (when or datetime.now(UTC)).strftime("%Y-%m-%d")
    return f"rebuild-{day}-{(dagster_run_id or 'adhoc')[:8]}"


def _log_datasets(con: duckdb.DuckDBPyConnection) -> None:
    """The rk_candidates splits as MLflow dataset inputs: name, content digest, schema, rows.

    Metadata only (MetaDataset): the rows stay in DuckDB; the digest (dataset.split_digest) says
    whether two runs trained on the same rows.
    """
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    from recsys_assets.ranking.dataset import split_digest

    path = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()[0][0]
    with warnings.catch_warnings():
        # MLflow registers its local-file source twice and warns that the URI is ambiguous.
        warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
        source = resolve_dataset_source(Path(path).resolve().as_uri() if path else "file:///memory")
    cols = con.execute("DESCRIBE rk_candidates").fetchall()
    schema = Schema([ColSpec(_MLFLOW_TYPES.get(c[1], "string"), c[0]) for c in cols])
    for split, context in (("train", "training"), ("valid", "validation"), ("test", "evaluation")):
        rows, digest = split_digest(con, split)
        if rows == 0:
            continue
        ds = MetaDataset(  # type: ignore[abstract]  # MLflow's own class; profile is optional
            source, name=f"rk_candidates[{split}]", digest=digest, schema=schema
        )
        mlflow.log_input(ds, context=context, tags={"rows": str(rows)})


# DuckDB column type -> MLflow ColSpec type, for the dataset schema shown under Datasets.
_MLFLOW_TYPES = {
    "DOUBLE": "double",
    "FLOAT": "float",
    "BIGINT": "long",
    "INTEGER": "integer",
    "SMALLINT": "integer",
    "TINYINT": "integer",
    "HUGEINT": "double",
    "BOOLEAN": "boolean",
    "VARCHAR": "string",
    "DATE": "datetime",
    "TIMESTAMP": "datetime",
}


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("mlflow", "lightgbm", "duckdb", "pandas", "numpy", "pyarrow"):
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:  # pragma: no cover
            reqs.append(pkg)
    return reqs


def evaluation_plots(trained, evaluation, out: Path) -> list[Path]:
    """Feature importance and the NDCG@k curve against the baselines, as PNG files in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    gain = trained.booster.feature_importance(importance_type="gain")
    order = sorted(range(len(gain)), key=lambda i: gain[i])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([trained.features[i] for i in order], [gain[i] for i in order])
    ax.set_title("Feature importance (total gain)")
    fig.tight_layout()
    files.append(out / "feature_importance.png")
    fig.savefig(files[-1], dpi=90)
    plt.close(fig)

    curve = evaluation.ndcg_curve
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for col in curve.columns:
        if col != "k":
            ax.plot(curve["k"], curve[col], marker="o", label=col)
    ax.set_xlabel("k")
    ax.set_ylabel("NDCG@k")
    ax.set_title(f"NDCG@k on the cold-start holdout ({evaluation.queries_evaluated} restaurants)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.append(out / "ndcg_at_k.png")
    fig.savefig(files[-1], dpi=90)
    plt.close(fig)
    return files


def log_to_mlflow(
    con: duckdb.DuckDBPyConnection,
    trained,
    evaluation,
    dataset,
    settings: Settings | None = None,
    dagster_run_id: str | None = None,
    register: bool = True,
) -> LoggedModel:
    """Log one training run and (by default) register it as the `challenger` version."""
    import mlflow

    from recsys_assets.ranking.pyfunc_model import (
        MODEL_CODE,
        export_serving_artifacts,
        input_example,
        model_signature,
    )

    settings = settings or load_settings()
    client = configure_mlflow(settings)
    exp_id = _experiment_id(client, settings)
    params = {f"lgb_{k}": v for k, v in trained.params.items()}
    cfg = dataset.summary()["config"]
    params.update({f"data_{k}": v for k, v in cfg.items() if k != "cutoff"})
    params.update(
        {
            "cutoff": str(dataset.cutoff),
            "serving_snapshot": str(dataset.serving_snapshot),
            "relevance_thresholds": ",".join(f"{t:g}" for t in dataset.relevance_thresholds),
            "best_iteration": trained.best_iteration,
            "n_features": len(trained.features),
        }
    )
    tags = {"data_snapshot_hash": dataset.snapshot_hash, "cutoff": str(dataset.cutoff)}
    if dagster_run_id:
        tags["dagster_run_id"] = dagster_run_id
    trained_on = (
        f"Trained on data snapshot {dataset.snapshot_hash} (cutoff {dataset.cutoff}) in "
        + (f"Dagster run {dagster_run_id}" if dagster_run_id else "a run outside Dagster")
        + f"; ndcg_at_10 {evaluation.metrics['ndcg_at_10']:.4f} on the cold-start holdout, "
        f"industry popularity {evaluation.baselines['industry_popularity']['ndcg_at_10']:.4f}."
    )
    run_tags = {
        **tags,
        # Without these MLflow shows the entry point's file (`__main__.py`) as the run's source.
        "mlflow.source.name": "recsys_assets.orchestration.ranking:ranker_model",
        "mlflow.source.type": "JOB",
        "mlflow.note.content": trained_on,
    }
    metrics = {
        k: float(v)
        for k, v in evaluation.flat_metrics().items()
        if v is not None and not math.isnan(float(v))
    }
    metrics["train_seconds"] = trained.train_seconds
    # Distinct names (trained.counts are "fitted_*"), so no count overwrites another.
    metrics.update({f"count_{k}": float(v) for k, v in dataset.counts.items()})
    metrics.update({f"count_{k}": float(v) for k, v in trained.counts.items()})
    pkg_dir = str(Path(__file__).resolve().parents[1])

    with (
        tempfile.TemporaryDirectory(prefix="rk-mlflow-") as tmp,
        mlflow.start_run(
            experiment_id=exp_id, run_name=run_name(dagster_run_id), tags=run_tags
        ) as run,
    ):
        tmpd = Path(tmp)
        _log_datasets(con)
        mlflow.log_params(
            {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in params.items()}
        )
        mlflow.log_metrics(metrics)
        for f in evaluation_plots(trained, evaluation, tmpd):
            mlflow.log_artifact(str(f), artifact_path="evaluation")
        per_ind = tmpd / "per_industry.csv"
        write_csv(evaluation.per_industry, per_ind)
        mlflow.log_artifact(str(per_ind), artifact_path="evaluation")
        curve = tmpd / "ndcg_at_k.csv"
        write_csv(evaluation.ndcg_curve, curve)
        mlflow.log_artifact(str(curve), artifact_path="evaluation")
        mlflow.log_dict(dataset.summary(), "evaluation/dataset_summary.json")

        artifacts = export_serving_artifacts(con, trained, dataset, tmpd / "serving")
        code = tmpd / "ranker_model.py"
        code.write_text(MODEL_CODE, encoding="utf-8")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            artifacts=artifacts,
            code_paths=[pkg_dir],
            signature=model_signature(),
            input_example=input_example(),
            pip_requirements=_pip_requirements(),
        )
        version = None
        if register:
            mv = mlflow.register_model(info.model_uri, MODEL_NAME, tags=tags)
            version = str(mv.version)
            if client.get_registered_model(MODEL_NAME).description != MODEL_DESCRIPTION:
                client.update_registered_model(MODEL_NAME, description=MODEL_DESCRIPTION)
            client.update_model_version(
                MODEL_NAME,
                version,
                description=f"{trained_on}\n\n{_GATE_HEADING} not decided yet (challenger).",
            )
            client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
            client.set_model_version_tag(MODEL_NAME, version, "run_id", run.info.run_id)
            client.set_model_version_tag(
                MODEL_NAME,
                version,
                "ndcg_at_10_at_training",
                f"{evaluation.metrics['ndcg_at_10']:.6f}",
            )
        return LoggedModel(run.info.run_id, info.model_uri, version, exp_id)


def version_by_alias(client, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, alias).version)
    except MlflowException:
        return None


def load_registered_booster(version: str, settings: Settings | None = None):
    """The booster of a registered version, read from its artefacts (no code import, no pickle)."""
    return load_registered_ranker(version, settings)[0]


def load_registered_ranker(version: str, settings: Settings | None = None) -> tuple[object, dict]:
    """(booster, meta) of a registered version: the booster file and its meta.json (JSON, no pickle).

    meta holds what the booster was trained with (features, the industry list behind
    industry_code, ...); {} for a version that has none.
    """
    import lightgbm as lgb
    import mlflow

    configure_mlflow(settings)
    with tempfile.TemporaryDirectory(prefix="rk-booster-") as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{MODEL_NAME}/{version}", dst_path=tmp
            )
        )
        found = sorted(local.rglob("booster.txt"))
        if not found:
            raise FileNotFoundError(f"version {version} of {MODEL_NAME} has no booster.txt")
        metas = sorted(found[0].parent.glob("meta.json"))
        meta = json.loads(metas[0].read_text(encoding="utf-8")) if metas else {}
        return lgb.Booster(model_file=str(found[0])), meta


def promote_if_better(
    con: duckdb.DuckDBPyConnection,
    challenger_version: str,
    dataset,
    settings: Settings | None = None,
    margin: float | None = None,
    floor: float | None = None,
    industry_popularity_ndcg: float | None = None,
) -> GateDecision:
    """Re-score challenger and champion on the current holdout (rk_* tables of `dataset`) and decide.

    `industry_popularity_ndcg` may be passed from the Evaluation to avoid recomputing it.
    """
    from recsys_assets.ranking.evaluate import evaluate, score_with_booster

    settings = settings or load_settings()
    client = configure_mlflow(settings)
    margin = settings.ranking.promotion_margin if margin is None else margin
    floor = settings.ranking.ndcg_floor if floor is None else floor
    challenger_version = str(challenger_version)
    champion_before = version_by_alias(client, CHAMPION)

    ch_booster, ch_meta = load_registered_ranker(challenger_version, settings)
    ch = score_with_booster(con, ch_booster, industries=ch_meta.get("industries"))
    ch_ndcg = ch.metrics["ndcg_at_10"]
    if industry_popularity_ndcg is None:
        industry_popularity_ndcg = evaluate(con, ch_booster, dataset).baselines[
            "industry_popularity"
        ]["ndcg_at_10"]
    metrics = {
        "challenger_ndcg_at_10": ch_ndcg,
        "industry_popularity_ndcg_at_10": industry_popularity_ndcg,
        "margin": margin,
        "ndcg_floor": floor,
        "queries_evaluated": float(ch.queries_evaluated),
    }

    reasons = []
    if champion_before == challenger_version:
        # A no-op: nothing to decide, and the version keeps the decision that made it champion.
        return GateDecision(
            False,
            f"version {challenger_version} is already the champion",
            challenger_version,
            champion_before,
            metrics,
        )
    if champion_before is not None:
        try:
            # Industry codes by the champion's own list: an industry added since it was trained
            # must not shift the codes it is re-scored with.
            champ_booster, champ_meta = load_registered_ranker(champion_before, settings)
            champ = score_with_booster(con, champ_booster, industries=champ_meta.get("industries"))
        except KeyError as exc:
            return _decide(
                client,
                challenger_version,
                champion_before,
                False,
                f"champion v{champion_before} cannot be re-scored on the current features "
                f"({exc}); promote by hand after checking",
                metrics,
            )
        metrics["champion_ndcg_at_10"] = champ.metrics["ndcg_at_10"]
        if not ch_ndcg > champ.metrics["ndcg_at_10"] + margin:
            reasons.append(
                f"ndcg_at_10 {ch_ndcg:.4f} does not beat champion v{champion_before} "
                f"re-scored {champ.metrics['ndcg_at_10']:.4f} + margin {margin:g}"
            )
    if math.isnan(ch_ndcg) or not ch_ndcg > industry_popularity_ndcg:
        reasons.append(
            f"ndcg_at_10 {ch_ndcg:.4f} does not beat industry popularity "
            f"{industry_popularity_ndcg:.4f}"
        )
    if math.isnan(ch_ndcg) or ch_ndcg < floor:
        reasons.append(f"ndcg_at_10 {ch_ndcg:.4f} is below the floor {floor:g}")
    if reasons:
        return _decide(
            client, challenger_version, champion_before, False, "; ".join(reasons), metrics
        )

    if champion_before is not None:
        client.set_registered_model_alias(MODEL_NAME, PREVIOUS, champion_before)
        client.set_model_version_tag(MODEL_NAME, champion_before, "demoted_by", challenger_version)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, challenger_version)
    vs = (
        f"beats champion v{champion_before} ({metrics['champion_ndcg_at_10']:.4f})"
        if champion_before is not None
        else "first champion"
    )
    reason = (
        f"ndcg_at_10 {ch_ndcg:.4f} {vs}, industry popularity ({industry_popularity_ndcg:.4f}) "
        f"and floor {floor:g}"
    )
    return _decide(client, challenger_version, champion_before, True, reason, metrics)


def _decide(client, version, champion_before, promoted, reason, metrics) -> GateDecision:
    client.set_model_version_tag(
        MODEL_NAME, version, "promotion_decision", "promoted" if promoted else "rejected"
    )
    _describe_decision(client, version, promoted, reason)
    client.set_model_version_tag(MODEL_NAME, version, "promotion_reason", reason[:5000])
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isnan(v):
            client.set_model_version_tag(MODEL_NAME, version, f"gate_{k}", f"{v:.6f}")
    return GateDecision(promoted, reason, version, champion_before, metrics)


def _describe_decision(client, version: str, promoted: bool, reason: str) -> None:
    """The version's description ends with the gate's decision (replacing an earlier one)."""
    before = client.get_model_version(MODEL_NAME, version).description or ""
    trained_on = before.split(_GATE_HEADING)[0].rstrip()
    verdict = "promoted to champion" if promoted else "rejected, not served"
    text = f"{_GATE_HEADING} {verdict}: {reason}"
    client.update_model_version(
        MODEL_NAME, version, description=f"{trained_on}\n\n{text}" if trained_on else text
    )


def rollback(settings: Settings | None = None, reason: str = "manual rollback") -> dict[str, str]:
    """champion <- previous; the demoted version is tagged. Raises when there is nothing to roll back to."""
    client = configure_mlflow(settings)
    current = version_by_alias(client, CHAMPION)
    previous = version_by_alias(client, PREVIOUS)
    if previous is None:
        raise LookupError(f"{MODEL_NAME} has no '{PREVIOUS}' version to roll back to")
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, previous)
    # `previous` is consumed: a second rollback must not flip back to the demoted model.
    client.delete_registered_model_alias(MODEL_NAME, PREVIOUS)
    if current is not None:
        client.set_model_version_tag(MODEL_NAME, current, "rolled_back", "true")
        client.set_model_version_tag(MODEL_NAME, current, "rollback_reason", reason[:5000])
    return {"champion": previous, "demoted": current or ""}


def aliases(settings: Settings | None = None) -> dict[str, str]:
    """alias -> version of the registered model (empty when it does not exist yet)."""
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(settings)
    try:
        rm = client.get_registered_model(MODEL_NAME)
    except MlflowException:
        return {}
    return {a: str(v) for a, v in (rm.aliases or {}).items()}
