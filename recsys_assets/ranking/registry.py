"""MLflow tracking, the model registry and the promotion gate.

- Every training run logs params, the input snapshot hash, metrics named as the dashboards expect
  (ndcg_at_10, industry_popularity_ndcg_at_10, oracle_ndcg_at_10, ...), plots, the per-industry table
  and the servable pyfunc, then registers a version of `industry-product-ranker` aliased `challenger`.
- `promote_if_better` serves whichever is best on the CURRENT holdout. It takes the challenger's
  Evaluation (scored once per rebuild, against every baseline with paired bootstrap CIs); the ranker
  is the candidate only if the CI of its NDCG@10 ratio to the strongest baseline lies above 1,
  otherwise that baseline is, registered as a pyfunc with the ranker's interface
  (`register_baseline`). The candidate becomes `champion` if it beats the current champion by the
  margin and meets the floor. A ranker champion is re-scored on the current holdout (its stored
  metrics came from an older one) only when no score is cached for (its version, this holdout); a
  baseline champion is its method, already scored. The old champion keeps `previous` so
  `rollback()` is one call. The decision and its reason go on the version (tags, description).
- Identity: `model_digest` (code, dataset recipe, data snapshot, params) is a tag on every version;
  a rebuild whose digest is registered reuses that version, so unchanged data and code add none.
- Aliases only, never stages (stages are deprecated in MLflow).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
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
    candidate_version: str | None = None  # what the gate tried to make champion
    candidate_kind: str = "ranker"  # ranker | baseline
    champion_version: str | None = None  # the champion after the decision
    strongest_baseline: str = ""
    champion_kind: str = "none"  # ranker | baseline | none
    champion_ndcg_at_10: float | None = None  # the champion's NDCG@10 on this holdout

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
    new_store: Path | None = None
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        db.parent.mkdir(parents=True, exist_ok=True)
        new_store = None if db.exists() else db
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if new_store is None:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    with unsynced_sqlite(new_store):  # the client creates the store's tables
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def unsynced_sqlite(db: Path) -> contextlib.AbstractContextManager[None]:
    """SQLite connections to `db` opened meanwhile skip fsync (`synchronous=OFF`) until it ends.

    MLflow creates a new sqlite store by running its ~60 schema migrations statement by statement,
    each its own commit: ~1,200 fsyncs, 3-4 s of a first rebuild on a disk where one takes 3 ms,
    for an empty store. Without fsync a crash of the process loses nothing (the OS has the
    writes); only a crash of the machine while the store is being created can damage it. Those
    connections get their setting back when this ends (MLflow keeps them in its pool), so what is
    logged afterwards is synced as before.
    """
    from recsys_assets.sqlite_sync import sqlite_synchronous

    return sqlite_synchronous([db], "OFF")


# What the MLflow UI shows on the experiment and the registered model ("mlflow.note.content" is the
# description field of experiments and runs). Kept here, next to what they describe.
EXPERIMENT_DESCRIPTION = (
    "Weekly rebuilds of the cold-start ranker of recsys-assets: a LightGBM ranker (rank_xendcg) that orders "
    "the food-supply catalog for a restaurant that just signed up. One run per Dagster "
    "`ranker_model` materialization, named rebuild-<date>-<Dagster run id>; metrics are on the "
    "cold-start holdout (NDCG@10 against every baseline, with paired bootstrap CIs of the ratio), "
    "the training data is under Datasets, plots and the per-industry table under Artifacts > "
    "evaluation. Runs named baseline-<name> hold a baseline the gate registered to serve."
)
MODEL_DESCRIPTION = (
    "Top products for a new restaurant from its name and menu (pyfunc: industry, name, menu, k). "
    "Serve `@champion`; `@challenger` is the latest trained version, `@previous` the champion it "
    "replaced (`recsys model rollback`). A version becomes champion only through the promotion "
    "gate; each version's description says what the gate decided and why. A version is a "
    "LightGBM ranker or (tag kind=baseline) the strongest baseline, registered with the same "
    "interface when the ranker does not significantly beat it."
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


def log_pyfunc(**kwargs):
    """`mlflow.pyfunc.log_model` (artifact "model") with `_pip_requirements()`: one place for what
    the ranker's and the baselines' pyfunc share. MLflow's own check of those pins against the
    installed packages stays (patching it out saved ~0.5 CPU-s a rebuild: not worth reaching into
    MLflow's internals)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.log_model(name="model", pip_requirements=_pip_requirements(), **kwargs)


# The PNG files of `evaluation_plots`, logged under evaluation/ with the training run.
PLOT_FILES = ("feature_importance.png", "ndcg_at_k.png")


def logged_plots(client, version: str, out: Path) -> list[Path] | None:
    """The version's `PLOT_FILES` as its training run logged them, downloaded into `out`; None
    when the run has not got them all (then draw them: `evaluation_plots`)."""
    from mlflow.exceptions import MlflowException

    run_id = client.get_model_version(MODEL_NAME, version).tags.get("run_id")
    if not run_id:
        return None
    try:
        return [
            Path(client.download_artifacts(run_id, f"evaluation/{name}", str(out)))
            for name in PLOT_FILES
        ]
    except (MlflowException, OSError):
        return None


def evaluation_plots(trained, evaluation, out: Path) -> list[Path]:
    """Feature importance and the NDCG@k curve against the baselines, as PNG files in `out`
    (named `PLOT_FILES`).

    The importance comes from the evaluation when it carries it (then `trained` may be None).
    """
    by_feature = getattr(evaluation, "feature_importance", None) or booster_gains(trained)
    return [importance_plot(by_feature, out), ndcg_plot(evaluation, out)]


def booster_gains(trained) -> dict[str, float]:
    """feature -> total gain of the trained booster (what `evaluate` stores with its numbers)."""
    gains = trained.booster.feature_importance(importance_type="gain")
    return dict(zip(trained.features, gains, strict=True))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def importance_plot(by_feature: dict[str, float], out: Path) -> Path:
    """`PLOT_FILES[0]` in `out`: the features by total gain."""
    plt = _pyplot()
    names = sorted(by_feature, key=lambda f: by_feature[f])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh(names, [by_feature[f] for f in names])
    ax.set_title("Feature importance (total gain)")
    fig.tight_layout()
    fig.savefig(out / PLOT_FILES[0], dpi=90)
    plt.close(fig)
    return out / PLOT_FILES[0]


def ndcg_plot(evaluation, out: Path) -> Path:
    """`PLOT_FILES[1]` in `out`: NDCG@k of the model and every baseline."""
    plt = _pyplot()
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
    fig.savefig(out / PLOT_FILES[1], dpi=90)
    plt.close(fig)
    return out / PLOT_FILES[1]


def log_to_mlflow(
    con: duckdb.DuckDBPyConnection,
    trained,
    evaluation,
    dataset,
    settings: Settings | None = None,
    dagster_run_id: str | None = None,
    register: bool = True,
    digest: str | None = None,
) -> LoggedModel:
    """Log one training run and (by default) register it as the `challenger` version.

    `evaluation`: the Evaluation, or a callable that waits for it (`ranker_model` scores the
    holdout in a thread meanwhile). What does not need it is logged first: the run, its datasets,
    params and the pyfunc (~1.5 s of single-threaded Python); then its description, the metrics
    (MLflow links metrics logged after a model to it, as it copies earlier ones when logging it),
    the evaluation artefacts and the registration, last, so a failure leaves no version.
    """
    import mlflow

    settings = settings or load_settings()
    client = configure_mlflow(settings)
    exp_id = _experiment_id(client, settings)
    tags = {
        "data_snapshot_hash": dataset.snapshot_hash,
        "cutoff": str(dataset.cutoff),
        "kind": "ranker",
        "model_digest": digest or model_digest("ranker", dataset, trained.params),
    }
    if dagster_run_id:
        tags["dagster_run_id"] = dagster_run_id
    run_tags = {
        **tags,
        # Without these MLflow shows the entry point's file (`__main__.py`) as the run's source.
        "mlflow.source.name": "recsys_assets.orchestration.ranking:ranker_model",
        "mlflow.source.type": "JOB",
    }
    with (
        tempfile.TemporaryDirectory(prefix="rk-mlflow-") as tmp,
        mlflow.start_run(
            experiment_id=exp_id, run_name=run_name(dagster_run_id), tags=run_tags
        ) as run,
    ):
        tmpd = Path(tmp)
        _log_datasets(con)
        mlflow.log_params(
            {
                k: (json.dumps(v) if isinstance(v, list | dict) else v)
                for k, v in _run_params(trained, dataset).items()
            }
        )
        info = _log_ranker_pyfunc(con, trained, dataset, tmpd / "serving")
        # The gains the Evaluation carries are the booster's: drawn before waiting for it.
        importance = importance_plot(booster_gains(trained), tmpd)
        evaluation = evaluation() if callable(evaluation) else evaluation
        trained_on = _trained_on(dataset, evaluation, dagster_run_id)
        mlflow.set_tag("mlflow.note.content", trained_on)
        mlflow.log_metrics(_run_metrics(trained, evaluation, dataset))
        plots = [importance, ndcg_plot(evaluation, tmpd)]
        _log_evaluation_artifacts(plots, evaluation, dataset, tmpd)
        version = None
        if register:
            version = _register_challenger(
                client, info.model_uri, tags, trained_on, run.info.run_id, evaluation
            )
        return LoggedModel(run.info.run_id, info.model_uri, version, exp_id)


def _trained_on(dataset, evaluation, dagster_run_id: str | None) -> str:
    """The run's and the version's description: what it was trained on and how it scored."""
    best = evaluation.strongest_baseline
    return (
        f"Trained on data snapshot {dataset.snapshot_hash} (cutoff {dataset.cutoff}) in "
        + (f"Dagster run {dagster_run_id}" if dagster_run_id else "a run outside Dagster")
        + f"; ndcg_at_10 {evaluation.metrics['ndcg_at_10']:.4f} on the cold-start holdout, "
        f"industry popularity {evaluation.baselines['industry_popularity']['ndcg_at_10']:.4f}, "
        f"strongest baseline {best} {evaluation.baselines[best]['ndcg_at_10']:.4f}."
    )


def _run_params(trained, dataset) -> dict:
    """LightGBM params (lgb_*), the dataset recipe (data_*) and the split's identity."""
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
    return params


def _run_metrics(trained, evaluation, dataset) -> dict[str, float]:
    """The evaluation's metrics (NaN left out), the training time and the counts."""
    metrics = {
        k: float(v)
        for k, v in evaluation.flat_metrics().items()
        if v is not None and not math.isnan(float(v))
    }
    metrics["train_seconds"] = trained.train_seconds
    # Distinct names (trained.counts are "fitted_*"), so no count overwrites another.
    metrics.update({f"count_{k}": float(v) for k, v in dataset.counts.items()})
    metrics.update({f"count_{k}": float(v) for k, v in trained.counts.items()})
    return metrics


def _log_evaluation_artifacts(plots: list[Path], evaluation, dataset, tmpd: Path) -> None:
    """The plots, the per-industry table, the NDCG@k curve and the dataset summary under
    evaluation/."""
    import mlflow

    for f in plots:
        mlflow.log_artifact(str(f), artifact_path="evaluation")
    per_ind = tmpd / "per_industry.csv"
    write_csv(evaluation.per_industry, per_ind)
    mlflow.log_artifact(str(per_ind), artifact_path="evaluation")
    curve = tmpd / "ndcg_at_k.csv"
    write_csv(evaluation.ndcg_curve, curve)
    mlflow.log_artifact(str(curve), artifact_path="evaluation")
    mlflow.log_dict(dataset.summary(), "evaluation/dataset_summary.json")


def _log_ranker_pyfunc(con, trained, dataset, serving_dir: Path):
    """The servable pyfunc (models-from-code, no pickle) with its serving artefacts; ModelInfo."""
    from recsys_assets.ranking.pyfunc_model import (
        MODEL_CODE,
        export_serving_artifacts,
        input_example,
        model_signature,
    )

    artifacts = export_serving_artifacts(con, trained, dataset, serving_dir)
    code = serving_dir.parent / "ranker_model.py"
    code.write_text(MODEL_CODE, encoding="utf-8")
    return log_pyfunc(
        python_model=str(code),
        artifacts=artifacts,
        code_paths=[str(Path(__file__).resolve().parents[1])],
        signature=model_signature(),
        input_example=input_example(),
        # What the booster's inputs mean: serving maps industries by name with this list.
        metadata={
            "kind": "ranker",
            "industries": list(dataset.industries),
            "features": list(trained.features),
            "candidate_recipe": dataset.summary()["config"],
        },
    )


def _register_challenger(client, model_uri, tags, trained_on, run_id, evaluation) -> str:
    """Register the logged model as a version aliased `challenger`, described as undecided."""
    import mlflow

    version = str(mlflow.register_model(model_uri, MODEL_NAME, tags=tags).version)
    if client.get_registered_model(MODEL_NAME).description != MODEL_DESCRIPTION:
        client.update_registered_model(MODEL_NAME, description=MODEL_DESCRIPTION)
    client.update_model_version(
        MODEL_NAME,
        version,
        description=f"{trained_on}\n\n{_GATE_HEADING} not decided yet (challenger).",
    )
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
    client.set_model_version_tag(MODEL_NAME, version, "run_id", run_id)
    client.set_model_version_tag(
        MODEL_NAME, version, "ndcg_at_10_at_training", f"{evaluation.metrics['ndcg_at_10']:.6f}"
    )
    return version


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


# --------------------------------------------------------------------------------------------
# Identity: a model is its code, its recipe and its data. The same digest twice is the same model,
# so a rebuild on unchanged data and code reuses the registered version instead of adding a copy.
# --------------------------------------------------------------------------------------------


def code_digest() -> str:
    """Hash of the ranking package's code and SQL, and of the taxonomy the labels come from."""
    import hashlib

    pkg = Path(__file__).resolve().parent
    files = sorted(
        [*pkg.rglob("*.py"), *pkg.rglob("*.sql"), pkg.parent / "taxonomy.py"],
        key=lambda f: str(f.relative_to(pkg.parent)),
    )
    h = hashlib.sha256()
    for f in files:
        if "__pycache__" in f.parts:
            continue
        h.update(str(f.relative_to(pkg.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _digest(*parts) -> str:
    import hashlib

    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def holdout_key(dataset) -> str:
    """The holdout a score belongs to: data snapshot, cutoff, dataset recipe and code (features)."""
    summary = dataset.summary()
    recipe = {k: summary[k] for k in ("cutoff", "config", "relevance_thresholds", "industries")}
    return _digest("holdout", dataset.snapshot_hash, recipe, code_digest())


def model_digest(kind: str, dataset, params: dict | None = None) -> str:
    """What identifies a model before it is trained: kind, data, dataset summary, code, params."""
    return _digest(kind, dataset.snapshot_hash, dataset.summary(), code_digest(), params or {})


def find_version_by_digest(client, digest: str) -> str | None:
    found = client.search_model_versions(
        f"name = '{MODEL_NAME}' and tags.model_digest = '{digest}'"
    )
    return str(max(int(v.version) for v in found)) if found else None


def model_key(client, version: str) -> str:
    """version:run_id, the key of cached scores (a recreated registry reuses version numbers)."""
    return f"{version}:{client.get_model_version(MODEL_NAME, str(version)).run_id or 'norun'}"


# --------------------------------------------------------------------------------------------
# Baselines as registered models: the gate can make one champion.
# --------------------------------------------------------------------------------------------


def register_baseline(
    con: duckdb.DuckDBPyConnection, name: str, dataset, settings: Settings | None = None
) -> tuple[str, bool]:
    """(version, reused): `name` as a pyfunc version of MODEL_NAME with the ranker's interface.

    Tables as of the serving snapshot; an identical registered baseline (same digest) is reused.
    """
    import mlflow

    from recsys_assets.ranking.baselines import BASELINES, export_baseline
    from recsys_assets.ranking.pyfunc_model import MODEL_CODE, input_example, model_signature

    settings = settings or load_settings()
    client = configure_mlflow(settings)
    digest = model_digest(f"baseline:{name}", dataset)
    existing = find_version_by_digest(client, digest)
    if existing is not None:
        return existing, True
    tags = {
        "kind": "baseline",
        "baseline": name,
        "model_digest": digest,
        "data_snapshot_hash": dataset.snapshot_hash,
        "cutoff": str(dataset.cutoff),
    }
    described = (
        f"Baseline {name}: {BASELINES[name].description} (no model; a ranked list from tables as "
        f"of {dataset.serving_snapshot})."
    )
    run_tags = {
        **tags,
        # The gate registers it (champion_model); otherwise MLflow shows `__main__.py` as source.
        "mlflow.source.name": "recsys_assets.orchestration.ranking:champion_model",
        "mlflow.source.type": "JOB",
        "mlflow.note.content": described,
    }
    pkg_dir = str(Path(__file__).resolve().parents[1])
    with (
        tempfile.TemporaryDirectory(prefix="rk-baseline-") as tmp,
        mlflow.start_run(
            experiment_id=_experiment_id(client, settings),
            run_name=f"baseline-{name}",
            tags=run_tags,
        ) as run,
    ):
        artifacts = export_baseline(con, name, dataset, Path(tmp) / "serving")
        code = Path(tmp) / "baseline_model.py"
        code.write_text(MODEL_CODE, encoding="utf-8")
        info = log_pyfunc(
            python_model=str(code),
            artifacts=artifacts,
            code_paths=[pkg_dir],
            signature=model_signature(),
            input_example=input_example(),
            metadata={"kind": "baseline", "baseline": name},
        )
        mv = mlflow.register_model(info.model_uri, MODEL_NAME, tags=tags)
        version = str(mv.version)
        client.set_model_version_tag(MODEL_NAME, version, "run_id", run.info.run_id)
        client.update_model_version(MODEL_NAME, version, description=described)
    return version, False


# --------------------------------------------------------------------------------------------
# The gate.
# --------------------------------------------------------------------------------------------


def _champion_score(con, client, version: str, dataset, ev, settings) -> tuple[float, str]:
    """(NDCG@10 of the current champion on this holdout, how it was obtained).

    A baseline champion is its method, already scored in `ev`. A ranker champion is re-scored only
    when no score is cached for (its version + run, this holdout).
    """
    from recsys_assets.ranking.evaluate import cached_score, save_score, score_with_booster

    tags = client.get_model_version(MODEL_NAME, version).tags
    if tags.get("kind") == "baseline" and tags.get("baseline") in ev.baselines:
        return ev.baselines[tags["baseline"]][
            "ndcg_at_10"
        ], "baseline method, scored with the challenger"
    key, hkey = model_key(client, version), holdout_key(dataset)
    cached = cached_score(con, key, hkey)
    if cached is not None:
        return cached["ndcg_at_10"], "cached score"
    booster, meta = load_registered_ranker(version, settings)
    # Industry codes by the champion's own list: an industry added since it was trained must not
    # shift the codes it is re-scored with.
    metrics = score_with_booster(con, booster, industries=meta.get("industries")).metrics
    save_score(con, key, hkey, metrics)
    return metrics["ndcg_at_10"], "re-scored"


def promote_if_better(
    con: duckdb.DuckDBPyConnection,
    challenger_version: str,
    dataset,
    settings: Settings | None = None,
    margin: float | None = None,
    floor: float | None = None,
    evaluation=None,
) -> GateDecision:
    """Serve whichever is best on the current holdout: the ranker, the strongest baseline or the
    current champion.

    The ranker is the candidate only when the paired bootstrap CI of its NDCG@10 ratio to the
    strongest baseline lies above 1; otherwise that baseline is (registered as a pyfunc and) the
    candidate. The candidate becomes champion when it beats the current champion by `margin` and
    meets the floor. `evaluation` is the challenger's Evaluation on this holdout (ranker_evaluation's
    numbers); without it the challenger is scored here, once.
    """
    settings = settings or load_settings()
    client = configure_mlflow(settings)
    margin = settings.ranking.promotion_margin if margin is None else margin
    floor = settings.ranking.ndcg_floor if floor is None else floor
    challenger_version = str(challenger_version)
    champion_before = version_by_alias(client, CHAMPION)
    if evaluation is None:
        from recsys_assets.ranking.evaluate import evaluate

        booster, meta = load_registered_ranker(challenger_version, settings)
        evaluation = evaluate(con, booster, dataset, industries=meta.get("industries"))
    ev = evaluation
    best = ev.strongest_baseline
    metrics = _gate_metrics(ev, margin, floor)
    ch_ndcg = metrics["challenger_ndcg_at_10"]
    vs_best = (
        f"ranker ndcg_at_10 {ch_ndcg:.4f} vs strongest baseline {best} "
        f"{metrics['strongest_baseline_ndcg_at_10']:.4f}: ratio {metrics['ratio_vs_strongest_baseline']:.3f} "
        f"(95% CI {metrics['ratio_ci_low']:.3f}-{metrics['ratio_ci_high']:.3f})"
    )
    if champion_before == challenger_version:
        # A no-op: the version keeps the decision that made it champion.
        return GateDecision(
            False,
            f"version {challenger_version} is already the champion (same code and data: no new "
            f"model was registered); {vs_best}",
            challenger_version,
            champion_before,
            metrics,
            candidate_version=challenger_version,
            candidate_kind="ranker",
            champion_version=champion_before,
            strongest_baseline=best,
            champion_kind=_kind(client, champion_before),
            champion_ndcg_at_10=ch_ndcg,
        )
    cand = _choose_candidate(con, challenger_version, dataset, settings, metrics, best, vs_best)
    decide = partial(
        _decide,
        client,
        challenger_version,
        champion_before,
        metrics=metrics,
        candidate=cand.version,
        kind=cand.kind,
        best=best,
    )
    return _gate(con, client, dataset, ev, settings, cand, champion_before, metrics, decide)


@dataclass(frozen=True)
class _Candidate:
    """What the gate tries to make champion: the challenger or the strongest baseline."""

    version: str
    kind: str  # ranker | baseline
    ndcg: float  # its NDCG@10 on this holdout
    why: str  # why it is the candidate (the start of the decision's reason)


def _choose_candidate(
    con, challenger_version: str, dataset, settings, metrics, best: str, vs_best: str
) -> _Candidate:
    """The ranker when the CI of its NDCG@10 ratio to the strongest baseline lies above 1, else
    that baseline (registered as a pyfunc, or its identical registered version reused)."""
    if metrics["ratio_ci_low"] > 1.0:  # NaN (no CI) is not above 1
        return _Candidate(
            challenger_version,
            "ranker",
            metrics["challenger_ndcg_at_10"],
            f"{vs_best}: the ranker significantly beats the strongest baseline",
        )
    version, _ = register_baseline(con, best, dataset, settings)
    return _Candidate(
        version,
        "baseline",
        metrics["strongest_baseline_ndcg_at_10"],
        f"{vs_best}: the ranker does not significantly beat it, so the candidate is baseline {best} (v{version})",
    )


def _gate_metrics(ev, margin: float, floor: float) -> dict[str, float]:
    """What the gate compares, from the challenger's Evaluation (tagged on the versions as gate_*)."""
    best = ev.strongest_baseline
    ci = ev.ratio_ci.get(best, {})
    return {
        "challenger_ndcg_at_10": ev.metrics["ndcg_at_10"],
        "industry_popularity_ndcg_at_10": ev.baselines["industry_popularity"]["ndcg_at_10"],
        "strongest_baseline_ndcg_at_10": ev.baselines[best]["ndcg_at_10"],
        "ratio_vs_strongest_baseline": ci.get("ratio", float("nan")),
        "ratio_ci_low": ci.get("ci_low", float("nan")),
        "ratio_ci_high": ci.get("ci_high", float("nan")),
        "margin": margin,
        "ndcg_floor": floor,
        "queries_evaluated": float(ev.queries_evaluated),
    }


def _gate(
    con, client, dataset, ev, settings, candidate: _Candidate, champion_before, metrics, decide
) -> GateDecision:
    """The candidate against the current champion (by the margin) and the floor; sets the aliases.

    `decide(promoted, reason, champion_ndcg=...)` records the decision (`_decide` bound to this
    gate's challenger, metrics and candidate).
    """
    cand, cand_ndcg, why = candidate.version, candidate.ndcg, candidate.why
    margin, floor = metrics["margin"], metrics["ndcg_floor"]
    reasons = []
    if champion_before == cand:
        reasons.append(f"v{cand} is already the champion")
    elif champion_before is not None:
        try:
            champ, how = _champion_score(con, client, champion_before, dataset, ev, settings)
        except (KeyError, FileNotFoundError) as exc:
            reason = (
                f"{why}; champion v{champion_before} cannot be re-scored on the current features "
                f"({exc}); promote by hand after checking"
            )
            return decide(False, reason, champion_ndcg=None)
        metrics["champion_ndcg_at_10"] = champ
        metrics["champion_score_cached"] = float(how != "re-scored")
        if not cand_ndcg > champ + margin:
            reasons.append(
                f"candidate ndcg_at_10 {cand_ndcg:.4f} does not beat champion v{champion_before} "
                f"({how}) {champ:.4f} + margin {margin:g}"
            )
    if math.isnan(cand_ndcg) or cand_ndcg < floor:
        reasons.append(f"candidate ndcg_at_10 {cand_ndcg:.4f} is below the floor {floor:g}")
    if reasons:
        serving = cand_ndcg if champion_before == cand else metrics.get("champion_ndcg_at_10")
        return decide(False, f"{why}; " + "; ".join(reasons), champion_ndcg=serving)
    if champion_before is not None:
        client.set_registered_model_alias(MODEL_NAME, PREVIOUS, champion_before)
        client.set_model_version_tag(MODEL_NAME, champion_before, "demoted_by", cand)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, cand)
    vs = (
        f"beats champion v{champion_before} ({metrics['champion_ndcg_at_10']:.4f})"
        if champion_before is not None
        else "first champion"
    )
    reason = (
        f"{why}; {candidate.kind} v{cand} ndcg_at_10 {cand_ndcg:.4f} {vs} and meets the floor "
        f"{floor:g}"
    )
    return decide(True, reason, champion_ndcg=cand_ndcg)


def _decide(
    client,
    version,
    champion_before,
    promoted,
    reason,
    metrics,
    candidate,
    kind,
    best,
    champion_ndcg,
) -> GateDecision:
    """Tags and description on the challenger (and on the candidate baseline): the decision says why."""
    tagged = [version]
    if candidate != version and (promoted or candidate != champion_before):
        tagged.append(candidate)  # a baseline that already serves keeps its own decision
    cand_ndcg = (
        metrics["challenger_ndcg_at_10"]
        if kind == "ranker"
        else metrics["strongest_baseline_ndcg_at_10"]
    )
    for v in tagged:
        mine = promoted and v == candidate
        own = metrics["challenger_ndcg_at_10"] if v == version else cand_ndcg
        client.set_model_version_tag(MODEL_NAME, v, "holdout_ndcg_at_10", f"{own:.6f}")
        client.set_model_version_tag(
            MODEL_NAME, v, "promotion_decision", "promoted" if mine else "rejected"
        )
        client.set_model_version_tag(MODEL_NAME, v, "promotion_reason", reason[:5000])
        _describe_decision(client, v, mine, reason)
        for k, val in metrics.items():
            if isinstance(val, float) and not math.isnan(val):
                client.set_model_version_tag(MODEL_NAME, v, f"gate_{k}", f"{val:.6f}")
    champion = version_by_alias(client, CHAMPION)
    return GateDecision(
        promoted,
        reason,
        version,
        champion_before,
        metrics,
        candidate_version=candidate,
        candidate_kind=kind,
        champion_version=champion,
        strongest_baseline=best,
        champion_kind=_kind(client, champion),
        champion_ndcg_at_10=champion_ndcg,
    )


def _describe_decision(client, version: str, promoted: bool, reason: str) -> None:
    """The version's description ends with the gate's decision (replacing an earlier one)."""
    before = client.get_model_version(MODEL_NAME, version).description or ""
    trained_on = before.split(_GATE_HEADING)[0].rstrip()
    verdict = "promoted to champion" if promoted else "rejected, not served"
    text = f"{_GATE_HEADING} {verdict}: {reason}"
    full = f"{trained_on}\n\n{text}" if trained_on else text
    client.update_model_version(MODEL_NAME, version, description=full[:5000])


def _kind(client, version: str | None) -> str:
    if version is None:
        return "none"
    return client.get_model_version(MODEL_NAME, version).tags.get("kind", "ranker")


DECISIONS_TABLE = "rk_gate_decisions"


def save_decision(con: duckdb.DuckDBPyConnection, decision: GateDecision) -> None:
    """The decision in the warehouse (decided_at in UTC), so `recsys summary` shows it without MLflow."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {DECISIONS_TABLE} (decided_at TIMESTAMP, promoted BOOLEAN, "
        "challenger_version VARCHAR, champion_version VARCHAR, champion_kind VARCHAR, "
        "champion_ndcg_at_10 DOUBLE, strongest_baseline VARCHAR, baseline_ndcg_at_10 DOUBLE, "
        "industry_popularity_ndcg_at_10 DOUBLE, reason VARCHAR)"
    )
    m = decision.metrics
    con.execute(
        f"INSERT INTO {DECISIONS_TABLE} VALUES (get_current_timestamp() AT TIME ZONE 'UTC', "
        "?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            decision.promoted,
            decision.challenger_version,
            decision.champion_version,
            decision.champion_kind,
            decision.champion_ndcg_at_10,
            decision.strongest_baseline,
            m.get("strongest_baseline_ndcg_at_10"),
            m.get("industry_popularity_ndcg_at_10"),
            decision.reason,
        ],
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
