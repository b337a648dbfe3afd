"""deploy/ is configuration that mostly runs elsewhere (a cluster, a container): check here what
can be checked without one. The instance file is valid for this Dagster, the Helm values set the
same limits as the local instance, and the run queue limits the tag the shard runs carry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from recsys_assets.orchestration.jobs import SHARD_RUN_TAGS, labeling_shards_job

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "pw-not-a-secret",
    "DAGSTER_PG_DB": "dagster",
}


@pytest.fixture
def instance_yaml(tmp_path, monkeypatch) -> dict:
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema validation
    return config


def test_instance_file_is_valid_and_takes_everything_site_specific_from_the_environment(
    instance_yaml,
):
    db = instance_yaml["storage"]["postgres"]["postgres_db"]
    for key, env in [
        ("hostname", "DAGSTER_PG_HOST"),
        ("port", "DAGSTER_PG_PORT"),
        ("username", "DAGSTER_PG_USERNAME"),
        ("password", "DAGSTER_PG_PASSWORD"),
        ("db_name", "DAGSTER_PG_DB"),
    ]:
        assert db[key] == {"env": env}
    assert db["scheme"] == "postgresql+psycopg2"  # psycopg 3 is SQLAlchemy 2.1's default
    assert instance_yaml["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance_yaml["run_launcher"]["class"] == "DefaultRunLauncher"
    assert instance_yaml["run_monitoring"]["enabled"] is True


def test_missing_database_env_var_fails_with_its_name(tmp_path, monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_HOST")
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    from dagster import DagsterInstance

    with pytest.raises(Exception, match="DAGSTER_PG_HOST"):
        DagsterInstance.from_config(str(tmp_path))


def test_shard_runs_carry_the_tag_the_queue_limits(instance_yaml):
    [limit] = instance_yaml["concurrency"]["runs"]["tag_concurrency_limits"]
    assert SHARD_RUN_TAGS.items() <= labeling_shards_job.tags.items()
    assert {limit["key"]: limit["value"]} == SHARD_RUN_TAGS
    assert 1 < limit["limit"] < instance_yaml["concurrency"]["runs"]["max_concurrent_runs"]


def test_helm_values_set_the_same_limits_as_the_local_instance(instance_yaml):
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    concurrency = values["concurrency"]
    local = instance_yaml["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["runs"]["maxConcurrentRuns"] == local["runs"]["max_concurrent_runs"]
    assert [
        {"key": t["key"], "value": t["value"], "limit": t["limit"]}
        for t in concurrency["runs"]["tagConcurrencyLimits"]
    ] == local["runs"]["tag_concurrency_limits"]
    assert concurrency["pools"]["defaultLimit"] == local["pools"]["default_limit"]
    # The chart refuses run-queue limits in both places at once.
    assert "config" not in values["dagsterDaemon"]["runCoordinator"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["--module-name", "recsys_assets"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["RECSYS_HOME"] == mounts["recsys-warehouse"]  # the warehouse on the shared volume
    assert {"name": "recsys-secrets"} in deployment["envSecrets"]  # key and ledger URL


def test_workspace_loads_the_location_the_image_serves():
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    assert entry["grpc_server"]["host"] == "127.0.0.1"
    assert entry["grpc_server"]["location_name"] == "recsys_assets"
    cmd = next(
        line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD")
    )
    assert '"-m", "recsys_assets"' in cmd and '"code-server", "start"' in cmd


# How Dagster's chart renders values.runLauncher.config.k8sRunLauncher.runK8sConfig into the
# instance's `run_k8s_config` (the chart's own key names; anything else it does not pass on).
_CHART_RUN_K8S_CONFIG = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


def test_run_pods_can_load_the_k8s_run_launcher_the_helm_values_configure():
    """A run pod loads the instance, so the image needs dagster-k8s, and the per-run pod settings
    must be ones K8sRunLauncher accepts (it would refuse the whole instance otherwise)."""
    from importlib.metadata import requires

    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher, __version__

    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    run_k8s = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert set(run_k8s) <= set(_CHART_RUN_K8S_CONFIG), set(run_k8s) - set(_CHART_RUN_K8S_CONFIG)
    config = {
        "instance_config_map": "recsys-dagster-instance",  # the chart fills in its own
        "run_k8s_config": {_CHART_RUN_K8S_CONFIG[k]: v for k, v in run_k8s.items()},
    }
    result = process_config(K8sRunLauncher.config_type(), config)
    assert result.success, [e.message for e in result.errors or []]

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'RUN pip install -c constraints.txt ".[k8s]"' in dockerfile
    extra = [r for r in requires("recsys-assets") or [] if 'extra == "k8s"' in r]
    assert [r.split(";")[0].strip() for r in extra] == [f"dagster-k8s=={__version__}"]
