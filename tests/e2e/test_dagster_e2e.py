"""End to end: the real webserver and daemon, a rebuild launched over GraphQL, schedules, a
failure alert posted to a local webhook, and the UI in headless Chromium.

Selected with `-m e2e`; `make test` runs them too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance

from recsys_assets.sample_data import generate_sample
from tests.e2e.stack import REPO, DagsterStack, processes_with_env, wait_until
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
LAST_ASSET = "recommendations"
EXPECTED_ASSETS = (
    "restaurants",
    "orders",
    "restaurant_industry",
    "industry_product_stats",
    "industry_top_products",
    "ranking_dataset",
    "ranker_model",
    "ranker_evaluation",
    "champion_model",
    LAST_ASSET,
)
METRICS_ASSET, METRICS_KEY = "ranker_evaluation", "metrics_vs_baselines"
METRICS_TEXT = ("industry_popularity", "global_popularity", "ndcg_at_10", "recall_at_20")


def dismiss_community_dialog(driver) -> None:
    """A fresh Dagster instance greets a new browser with a newsletter dialog; skip it like a user."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        button = WebDriverWait(driver, 10).until(
            lambda d: d.find_elements("xpath", "//button[normalize-space()='Skip']")
        )[0]
    except TimeoutException:
        return
    button.click()


@pytest.fixture(scope="module")
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(tmp_path_factory, hook):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    generate_sample(data, n_restaurants=400, seed=11, fmt="csv")
    home = root / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "MLFLOW_TRACKING_URI", "RECSYS_LABELER"}
    }
    env.update(
        RECSYS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        RECSYS_DATA_DIR=str(data),
        RECSYS_ALERT_WEBHOOK=hook.url,
        RECSYS_LABELER="offline",
    )
    # The project's instance settings, with shorter waits: run monitoring polls every 5 s, not
    # 30 s, and gives back a slot 5 s, not 60 s, after a run ends (the killed-run test waits for
    # it); the daemon takes queued runs every second, not every 5 s (each test launches runs).
    s = DagsterStack(
        dagster_home=home / "dagster",
        env=env,
        instance_settings={
            "run_monitoring": {"poll_interval_seconds": 5, "free_slots_after_run_end_seconds": 5},
            "run_coordinator": {
                "module": "dagster.core.run_coordinator",
                "class": "QueuedRunCoordinator",
                "config": {"dequeue_interval_seconds": 1},
            },
        },
    )
    s.recsys_home = home
    s.rebuilt = False
    try:
        s.start()
        yield s
    finally:
        s.stop()
        assert processes_with_env("DAGSTER_HOME", str(s.dagster_home)) == [], (
            "a process was left behind"
        )


def graphql(stack, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(  # noqa: S310 (http://127.0.0.1, a server the test started)
        f"{stack.url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 (http://127.0.0.1, a server the test started)
        payload = json.loads(r.read())
    assert "errors" not in payload, payload
    return payload["data"]


def client(stack):
    from dagster_graphql import DagsterGraphQLClient

    return DagsterGraphQLClient("127.0.0.1", port_number=stack.port, timeout=60)


def wait_for_run(stack, run_id: str, timeout: float = 600) -> str:
    c = client(stack)
    return wait_until(
        lambda: (s := c.get_run_status(run_id).value) in TERMINAL and s,
        timeout,
        f"run {run_id}\n{stack.tail()}",
        interval=1.0,
    )


JOB_RUNS = """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
  runId pipelineName status tags { key value } repositoryOrigin { repositoryLocationName } } } } }"""


def runs_on_job_page(stack, job: str) -> list[dict]:
    """The runs the UI lists on a job's Runs tab: its name AND its code location's repository tag
    (ui-core's PipelineRunsFeedRoot builds exactly this filter)."""
    repo_tag = {"key": ".dagster/repository", "value": "__repository__@recsys_assets"}
    data = graphql(stack, JOB_RUNS, {"f": {"pipelineName": job, "tags": [repo_tag]}})
    return data["runsOrError"]["results"]


def cli_materialize(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", "materialize", *args],
        env={**stack.env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_rebuild_job_over_graphql(stack):
    """Two rebuilds at once (a double click): pools serialize the warehouse steps, both succeed."""
    c = client(stack)
    run_id, second_id = c.submit_job_execution("rebuild_job"), c.submit_job_execution("rebuild_job")
    assert wait_for_run(stack, run_id) == "SUCCESS", stack.tail()
    assert wait_for_run(stack, second_id) == "SUCCESS", stack.tail()
    stack.rebuilt = True
    con = duckdb.connect(str(stack.recsys_home / "warehouse.duckdb"), read_only=True)
    try:
        counts = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in (
                "restaurants",
                "orders",
                "restaurant_industry",
                "industry_top_products",
                "recommendations",
            )
        }
    finally:
        con.close()
    assert counts["restaurants"] == counts["restaurant_industry"] > 300
    assert counts["orders"] > 1000 and counts["industry_top_products"] > 100
    assert counts["recommendations"] == counts["restaurants"] * 10
    from mlflow import MlflowClient

    client_ = MlflowClient(tracking_uri=f"sqlite:///{stack.recsys_home / 'mlflow.db'}")
    champion = client_.get_model_version_by_alias("industry-product-ranker", "champion")
    assert champion.tags["promotion_decision"] == "promoted"
    versions = {
        str(v.version): v for v in client_.search_model_versions("name = 'industry-product-ranker'")
    }
    # The same data and code twice: one ranker (the later rebuild reuses its version instead of
    # training a copy) and at most one baseline (registered when the ranker does not beat it).
    rankers = [v for v in versions.values() if v.tags.get("kind") == "ranker"]
    baselines = [v for v in versions.values() if v.tags.get("kind") == "baseline"]
    assert len(rankers) == 1 and len(baselines) <= 1 and len(versions) == 1 + len(baselines)
    assert rankers[0].tags["dagster_run_id"] in {run_id, second_id}
    if champion.tags["kind"] == "ranker":
        assert "the ranker significantly beats" in champion.tags["promotion_reason"]
    else:
        assert "does not significantly beat" in champion.tags["promotion_reason"]
        assert rankers[0].tags["promotion_decision"] == "rejected"
    # Both runs gated; the first decided, the second found the same champion (the warehouse
    # keeps every decision for `recsys summary`).
    con = duckdb.connect(str(stack.recsys_home / "warehouse.duckdb"), read_only=True)
    try:
        decisions = con.execute(
            "SELECT promoted, champion_version FROM rk_gate_decisions ORDER BY decided_at"
        ).fetchall()
    finally:
        con.close()
    assert decisions == [(True, str(champion.version)), (False, str(champion.version))]


def test_schedule_and_sensors_are_running(stack):
    data = graphql(
        stack,
        """{ workspaceOrError { ... on Workspace { locationEntries { name } } } }""",
    )
    location = data["workspaceOrError"]["locationEntries"][0]["name"]
    selector = {"repositoryName": "__repository__", "repositoryLocationName": location}
    data = graphql(
        stack,
        """query($s: RepositorySelector!) {
             schedulesOrError(repositorySelector: $s) { ... on Schedules { results {
               name cronSchedule executionTimezone scheduleState { status } } } }
             sensorsOrError(repositorySelector: $s) { ... on Sensors { results {
               name sensorState { status } } } }
           }""",
        {"s": selector},
    )
    schedules = {s["name"]: s for s in data["schedulesOrError"]["results"]}
    assert schedules["rebuild_schedule"]["cronSchedule"] == "0 5 * * 1"
    assert schedules["rebuild_schedule"]["executionTimezone"] == "Asia/Seoul"
    assert schedules["rebuild_schedule"]["scheduleState"]["status"] == "RUNNING"
    sensors = {s["name"]: s["sensorState"]["status"] for s in data["sensorsOrError"]["results"]}
    assert sensors["failure_alert_sensor"] == "RUNNING"
    assert sensors["new_restaurants_sensor"] == "RUNNING"


@pytest.mark.skipif(
    not shutil.which("chromium") or not shutil.which("chromedriver"),
    reason="Debian chromium/chromium-driver not installed (.ci/run installs them)",
)
def test_ui_in_headless_chromium(stack, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    if not stack.rebuilt:
        run_id = client(stack).submit_job_execution("rebuild_job")
        assert wait_for_run(stack, run_id) == "SUCCESS", stack.tail()
        stack.rebuilt = True
    # A `recsys materialize` run: the UI must list it under rebuild_job, tagged as the CLI's.
    out = cli_materialize(stack, "--select", "restaurants")
    assert out.returncode == 0, out.stderr
    cli_run_id = out.stdout.split("(run ")[1].split(")")[0]
    [listed] = [r for r in runs_on_job_page(stack, "rebuild_job") if r["runId"] == cli_run_id]
    assert {"key": "recsys/launched_by", "value": "cli"} in listed["tags"]
    assert listed["status"] == "SUCCESS"
    assert listed["repositoryOrigin"]["repositoryLocationName"] == "recsys_assets"  # timeline

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1800,1100",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        wait = WebDriverWait(driver, 90)
        # The whole graph, upstream of the last asset, as a user opens it from the asset page.
        # Zoomed to fit, long names are elided in the nodes, so the graph is checked by its groups
        # and short names, and the catalog (a table) for every full asset name.
        driver.get(
            f"{stack.url}/assets/{LAST_ASSET}?view=lineage&lineageScope=upstream&lineageDepth=10"
        )
        dismiss_community_dialog(driver)
        for name in (
            "ingest",
            "labeling",
            "warehouse",
            "ranking",
            "orders",
            "ranker_model",
            LAST_ASSET,
        ):
            wait.until(lambda d, n=name: n in d.page_source)
        driver.save_screenshot(str(tmp_path / "asset_graph.png"))

        driver.get(f"{stack.url}/assets")
        for name in EXPECTED_ASSETS:
            wait.until(lambda d, n=name: n in d.page_source)
        driver.save_screenshot(str(tmp_path / "asset_catalog.png"))

        driver.get(f"{stack.url}/assets/{METRICS_ASSET}")
        dismiss_community_dialog(driver)
        wait.until(lambda d: METRICS_KEY in d.page_source)
        for text in METRICS_TEXT:
            wait.until(lambda d, t=text: t in d.page_source)  # the metadata table rendered
        driver.save_screenshot(str(tmp_path / "asset_metadata.png"))

        # The job's Runs tab lists the CLI's run.
        driver.get(f"{stack.url}/locations/recsys_assets/jobs/rebuild_job/runs")
        wait.until(lambda d: cli_run_id[:8] in d.page_source)

        materialize_all_launches_without_a_warning(stack, driver, "rebuild_job")
    finally:
        driver.quit()
    assert (tmp_path / "asset_graph.png").stat().st_size > 10_000
    shot_dir = os.environ.get("RECSYS_SCREENSHOT_DIR")
    if shot_dir:
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, Path(shot_dir) / png.name)


def materialize_all_launches_without_a_warning(stack, driver, job: str) -> None:
    """Click the job page's "Materialize all" as a user does: the run must start at once (no
    "Are you sure? ... upstream assets ... have not been materialized" dialog) and succeed."""
    before = {r["runId"] for r in runs_on_job_page(stack, job)}
    driver.get(f"{stack.url}/locations/recsys_assets/jobs/{job}")
    dismiss_community_dialog(driver)
    button = wait_until(
        lambda: next(
            (
                b
                for b in driver.find_elements("xpath", "//button[contains(., 'Materialize all')]")
                if b.is_displayed() and b.is_enabled()
            ),
            None,
        ),
        90,
        f"the Materialize all button of {job}",
    )
    button.click()

    def launched_or_asked():
        if (
            "Are you sure?" in driver.page_source
            or "have not been materialized" in driver.page_source
        ):
            return "warning"
        new = [r["runId"] for r in runs_on_job_page(stack, job) if r["runId"] not in before]
        return new[0] if new else None

    outcome = wait_until(launched_or_asked, 120, f"a run of {job} from Materialize all")
    assert outcome != "warning", "Materialize all opened the 'Are you sure?' dialog"
    assert wait_for_run(stack, outcome) == "SUCCESS", stack.tail()
    [run] = [r for r in runs_on_job_page(stack, job) if r["runId"] == outcome]
    assert {"key": "recsys/launched_by", "value": "ui"} in run["tags"]


def test_failure_is_recorded_and_posted(stack, hook):
    bad_config = {"resources": {"recsys": {"config": {"data_dir": "/nonexistent/recsys-data"}}}}
    run_id = client(stack).submit_job_execution("labeling_job", run_config=bad_config)
    assert wait_for_run(stack, run_id) == "FAILURE"
    alerts_db = stack.recsys_home / "alerts.sqlite"

    def recorded():
        if not alerts_db.exists():
            return None
        with sqlite3.connect(alerts_db) as con:
            con.row_factory = sqlite3.Row
            return con.execute("SELECT * FROM alerts WHERE run_id = ?", [run_id]).fetchone()

    row = wait_until(recorded, 180, f"an alert for run {run_id}\n{stack.tail()}", interval=1.0)
    assert row["kind"] == "system_failure"
    assert row["step_key"] == "restaurants"
    assert "nonexistent" in row["message"]
    assert row["posted"] == 1
    assert any(
        run_id in p["text"] and "Re-execute from failure" in p["text"] for p in hook.payloads
    )


def alerts_for(stack, run_id: str) -> list[sqlite3.Row]:
    alerts_db = stack.recsys_home / "alerts.sqlite"
    if not alerts_db.exists():
        return []
    with sqlite3.connect(alerts_db) as con:
        con.row_factory = sqlite3.Row
        return con.execute("SELECT * FROM alerts WHERE run_id = ?", [run_id]).fetchall()


def test_cli_run_failure_is_alerted_once_with_the_daemon_running(stack, hook, tmp_path):
    """A failed `recsys materialize` is alerted by the CLI and seen by the daemon's failure sensor
    (it watches in-process runs too): one alert, one post."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "restaurants.csv").write_text("restaurant_id,name,signup_date\nR1,a,2024-01-01\n")
    out = subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", "materialize", "--select", "restaurants"],
        env={**stack.env, "RECSYS_DATA_DIR": str(bad), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith(
        "error: restaurants:"
    )
    with DagsterInstance.from_config(str(stack.dagster_home)) as instance:
        [cli_run] = [
            r
            for r in instance.get_runs()
            if r.tags.get("recsys/launched_by") == "cli" and r.status.value == "FAILURE"
        ]
    # Listed under its job in the UI, like every CLI run.
    assert cli_run.run_id in {r["runId"] for r in runs_on_job_page(stack, "rebuild_job")}
    # The sensor handles failures in order: once a later failure is alerted, it has been past the
    # CLI's run (and found its alert).
    bad_config = {"resources": {"recsys": {"config": {"data_dir": "/nonexistent/recsys-data"}}}}
    later = client(stack).submit_job_execution("labeling_job", run_config=bad_config)
    assert wait_for_run(stack, later) == "FAILURE"
    wait_until(
        lambda: alerts_for(stack, later),
        180,
        f"an alert for run {later}\n{stack.tail()}",
        interval=1.0,
    )
    [row] = alerts_for(stack, cli_run.run_id)
    assert row["step_key"] == "restaurants" and "menu" in row["message"] and row["posted"] == 1
    assert sum(p["run_id"] == cli_run.run_id for p in hook.payloads) == 1


def test_killed_run_worker_is_failed_alerted_and_its_slot_freed(stack, hook):
    """kill -9 of a daemon-launched run worker mid-step: the code server reports the run failed,
    the sensor alerts it with the step and the signal, run monitoring gives back its pool slot."""
    run_id = client(stack).submit_job_execution("rebuild_job")
    with DagsterInstance.from_config(str(stack.dagster_home)) as instance:

        def started(step: str = "ranker_model"):
            records = instance.get_records_for_run(
                run_id, of_type=DagsterEventType.STEP_START
            ).records
            return next(
                (
                    r.event_log_entry.dagster_event
                    for r in records
                    if r.event_log_entry.dagster_event.step_key == step
                ),
                None,
            )

        def slot_freed() -> bool:
            claimed = instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots
            return all(s.run_id != run_id for s in claimed)

        event = wait_until(started, 600, f"ranker_model to start\n{stack.tail()}", interval=0.1)
        os.kill(event.pid, signal.SIGKILL)
        assert not slot_freed()  # a killed worker gives nothing back by itself
        assert wait_for_run(stack, run_id, timeout=300) == "FAILURE"
        [row] = wait_until(
            lambda: alerts_for(stack, run_id), 180, f"an alert for {run_id}", interval=1.0
        )
        assert row["step_key"] == "ranker_model" and "signal 9" in row["message"]
        assert any(p["run_id"] == run_id for p in hook.payloads)
        wait_until(
            slot_freed, 240, "run monitoring to free the killed run's warehouse slot", interval=1.0
        )
