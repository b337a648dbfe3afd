"""The multi-process deployment of deploy/, end to end: a throwaway PostgreSQL cluster holds the
Dagster instance (deploy/dagster.yaml as shipped) and the labeling ledger; a gRPC code server
(deploy/workspace.yaml), the webserver and the daemon run as in production. A backfill of all
eight `restaurant_industry_shard` partitions runs as separate run processes, four at a time
(the run queue's tag limit), against the local OpenAI-compatible test server. One run worker is
killed with SIGKILL mid-shard, alerted, and re-executed; nothing is labeled twice and no answer is
paid for twice; `restaurant_industry` is then assembled from the shards without a call.

Selected with `-m postgres_e2e` (`make test-postgres-e2e`, run by .ci/run); skipped when no
PostgreSQL server binaries are installed.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from recsys_assets.labeling.ledger import input_key, normalize_text
from recsys_assets.orchestration.jobs import SHARD_RUN_TAGS
from recsys_assets.sample_data import generate_sample
from recsys_assets.warehouse.labels import N_SHARDS, SHARD_SQL
from tests.e2e.stack import REPO, DagsterStack, processes_with_env, wait_until
from tests.fake_openai_server import FakeOpenAI
from tests.pg_server import PgCluster, PgUnavailable

pytestmark = [pytest.mark.postgres_e2e, pytest.mark.timeout(900)]

N_RESTAURANTS = 160
RUNS_AT_ONCE = 4  # deploy/dagster.yaml: tag_concurrency_limits for recsys/run_queue=llm-shards
ANSWERED_BEFORE_KILL = 3  # the victim shard's answers that must survive its worker's death
API_KEY = "sk-e2e-postgres-deploy"
LOCATION = "recsys_assets"  # deploy/workspace.yaml
REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}


class GatedOpenAI(FakeOpenAI):
    """The test server, plus the two things this test must control over a run it cannot pause:

    * `opened`: every call waits until the test has seen four shard runs started at once;
    * a victim shard: after `ANSWERED_BEFORE_KILL` of its calls, its further calls are held
      without an answer until `release_victim()`, then their connections are closed unanswered
      (a provider does not bill a request it never answered).

    `paid` counts, per restaurant text, the 200 answers (what a provider bills).
    """

    def __init__(self, **kwargs: Any) -> None:
        self.opened = threading.Event()
        self.drop = threading.Event()
        self.victim: set[str] = set()
        self.victim_admitted = 0
        self.held = 0
        self.dropped = 0
        self.paid: collections.Counter[str] = collections.Counter()
        super().__init__(**kwargs)

    def release_victim(self) -> None:
        """Close the held calls unanswered; the victim's later calls (its re-execution) pass."""
        with self.lock:
            self.victim = set()
        self.drop.set()

    def _texts(self, body: dict[str, Any]) -> list[str]:
        user = next(m["content"] for m in body["messages"] if m.get("role") == "user")
        block = user.split("<restaurants>", 1)[1].split("</restaurants>", 1)[0]
        return [text_key(it.get("name"), it.get("menu")) for it in json.loads(block)]

    def _handler_class(self):
        base = super()._handler_class()
        fake = self

        class Gated(base):  # type: ignore[misc,valid-type]
            status = 0

            def _send(self, status: int, *args: Any, **kwargs: Any) -> None:
                self.status = status
                super()._send(status, *args, **kwargs)

            def _handle(self, body: dict[str, Any]) -> None:
                texts = fake._texts(body)
                fake.opened.wait()
                with fake.lock:
                    hold = bool(fake.victim.intersection(texts))
                    if hold and fake.victim_admitted < ANSWERED_BEFORE_KILL:
                        fake.victim_admitted += 1
                        hold = False
                    fake.held += hold
                if hold:
                    fake.drop.wait()
                    with fake.lock:
                        fake.dropped += 1
                    self.close_connection = True
                    return
                super()._handle(body)
                if self.status == 200:
                    with fake.lock:
                        fake.paid.update(texts)

        return Gated


def text_key(name: object, menu: object) -> str:
    """A restaurant as the server sees it (the sample's name + menu pairs are unique)."""
    return f"{normalize_text(name)}\x1f{normalize_text(menu)}"


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    cluster = PgCluster()
    try:
        cluster.start()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def llm() -> Iterator[GatedOpenAI]:
    server = GatedOpenAI(latency_ms=50, api_key=API_KEY)
    server.keep_bodies = False
    with server:
        yield server
        server.opened.set()
        server.drop.set()


@pytest.fixture
def stack(tmp_path, pg, llm, monkeypatch) -> Iterator[DagsterStack]:
    data = tmp_path / "data"
    generate_sample(data, n_restaurants=N_RESTAURANTS, seed=5, fmt="csv")
    home = tmp_path / "home"
    pg.create_database("dagster")
    # deploy/dagster.yaml reads these; the test process reads the same instance.
    instance_env = {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USERNAME": pg.user,
        "DAGSTER_PG_PASSWORD": pg.password,
        "DAGSTER_PG_DB": "dagster",
    }
    for name, value in instance_env.items():
        monkeypatch.setenv(name, value)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "RECSYS_", "MLFLOW_")) and k != "DAGSTER_HOME"
    }
    env.update(
        instance_env,
        DAGSTER_HOME=str(home / "dagster"),
        RECSYS_HOME=str(home),  # the warehouse file every run process reaches
        RECSYS_DATA_DIR=str(data),
        RECSYS_LEDGER_URL=pg.url("dagster"),  # the ledger on the same PostgreSQL database
        RECSYS_LABELER="llm",
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY=API_KEY,
        RECSYS_LLM_TIMEOUT="600",  # calls wait at the gate while four run workers start
        PYTHONPATH=str(REPO),
    )
    s = DagsterStack(
        dagster_home=home / "dagster",
        env=env,
        instance_yaml=REPO / "deploy" / "dagster.yaml",
        workspace_yaml=REPO / "deploy" / "workspace.yaml",
    )
    s.recsys_home = home
    try:
        s.start(timeout=240)
        yield s
    finally:
        llm.opened.set()
        llm.drop.set()
        s.stop()
        assert processes_with_env("DAGSTER_HOME", str(s.dagster_home)) == [], (
            "a process was left behind"
        )


def graphql(stack: DagsterStack, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    req = urllib.request.Request(  # noqa: S310 (http://127.0.0.1, a server the test started)
        f"{stack.url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 (http://127.0.0.1, a server the test started)
            payload = json.loads(r.read())
    except urllib.error.HTTPError as exc:  # a malformed query: GraphQL says why in the body
        raise AssertionError(f"{exc}: {exc.read().decode(errors='replace')[:2000]}") from None
    assert "errors" not in payload, payload
    return payload["data"]


def launch_assets(stack: DagsterStack, *assets: str) -> str:
    data = graphql(
        stack,
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }""",
        {
            "p": {
                "selector": {
                    **REPOSITORY,
                    "jobName": "__ASSET_JOB",
                    "assetSelection": [{"path": [a]} for a in assets],
                }
            }
        },
    )["launchRun"]
    assert data["__typename"] == "LaunchRunSuccess", data
    return data["run"]["runId"]


def launch_shard_backfill(stack: DagsterStack) -> str:
    data = graphql(
        stack,
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }""",
        {
            "p": {
                "selector": {
                    "partitionSetName": "labeling_shards_job_partition_set",
                    "repositorySelector": REPOSITORY,
                },
                "partitionNames": [str(i) for i in range(N_SHARDS)],
            }
        },
    )["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    return data["backfillId"]


def reexecute_from_failure(stack: DagsterStack, run_id: str) -> str:
    data = graphql(
        stack,
        """mutation($p: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $p) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }""",
        {"p": {"parentRunId": run_id, "strategy": "FROM_FAILURE"}},
    )["launchRunReexecution"]
    assert data["__typename"] == "LaunchRunSuccess", data
    return data["run"]["runId"]


TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def wait_for_run(instance, stack, run_id: str, timeout: float = 400) -> DagsterRunStatus:
    return wait_until(
        lambda: (run := instance.get_run_by_id(run_id)) and run.status in TERMINAL and run.status,
        timeout,
        f"run {run_id}\n{stack.tail()}",
        interval=0.5,
    )


def shard_rows(home: Path) -> dict[int, list[tuple[str, str, str | None]]]:
    """(name, menu, description) of the ingested restaurants, by shard."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            f"SELECT {SHARD_SQL}, name, menu, description FROM restaurants"
        ).fetchall()
    finally:
        con.close()
    out: dict[int, list[tuple[str, str, str | None]]] = collections.defaultdict(list)
    for shard, *text in rows:
        out[shard].append(tuple(text))
    return out


def ledger_rows(pg: PgCluster) -> list[tuple[str, str, int]]:
    with psycopg.connect(pg.url("dagster", driver="postgresql")) as con:
        return con.execute("SELECT input_key, status, attempts FROM labels").fetchall()


def max_overlap(records) -> int:
    """The most runs in progress at one instant, from their records' start and end times."""
    edges = sorted(
        [(r.start_time, 1) for r in records if r.start_time]
        + [(r.end_time, -1) for r in records if r.end_time]
    )
    level = best = 0
    for _, step in edges:
        level += step
        best = max(best, level)
    return best


def alerts_for(home: Path, run_id: str) -> list[sqlite3.Row]:
    db = home / "alerts.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        return con.execute("SELECT * FROM alerts WHERE run_id = ?", [run_id]).fetchall()


def test_shard_backfill_on_postgres_survives_a_killed_run_worker(stack, pg, llm):
    home = stack.recsys_home
    llm.opened.set()  # ingest makes no call
    with DagsterInstance.from_config(str(stack.dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        ingest = launch_assets(stack, "restaurants")
        assert wait_for_run(instance, stack, ingest) == DagsterRunStatus.SUCCESS, stack.tail()
        shards = shard_rows(home)
        texts = {text_key(n, m) for rows in shards.values() for n, m, _ in rows}
        assert len(shards) == N_SHARDS and len(texts) == N_RESTAURANTS

        llm.opened.clear()  # calls wait until four shard runs are seen in progress at once
        backfill = launch_shard_backfill(stack)

        def backfill_runs():
            return instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill}))

        def four_started_rest_queued():
            runs = backfill_runs()
            started = [r for r in runs if r.status == DagsterRunStatus.STARTED]
            queued = [r for r in runs if r.status == DagsterRunStatus.QUEUED]
            return len(runs) == N_SHARDS and len(started) == RUNS_AT_ONCE and started, queued

        started, queued = wait_until(
            lambda: (v := four_started_rest_queued())[0] and v,
            400,
            f"{RUNS_AT_ONCE} shard runs started\n{stack.tail()}",
            interval=0.5,
        )
        assert len(queued) == N_SHARDS - RUNS_AT_ONCE  # the tag limit holds the other four back
        assert all(
            r.tags["recsys/run_queue"] == SHARD_RUN_TAGS["recsys/run_queue"] for r in started
        )
        victim = started[0]
        shard = int(victim.tags["dagster/partition"])
        llm.victim = {text_key(n, m) for n, m, _ in shards[shard]}
        llm.opened.set()

        # Mid-shard: some of its answers are in the ledger, its worker waits on the next calls.
        done_keys = {input_key(*row) for row in shards[shard]}

        def victim_mid_shard():
            recorded = {k for k, s, _ in ledger_rows(pg) if s == "ok"} & done_keys
            return llm.held >= 1 and len(recorded) == ANSWERED_BEFORE_KILL

        wait_until(victim_mid_shard, 300, f"shard {shard} half done\n{stack.tail()}")
        [step_start] = instance.get_records_for_run(
            victim.run_id, of_type=DagsterEventType.STEP_START
        ).records
        pid = step_start.event_log_entry.dagster_event.pid
        assert pid in processes_with_env("DAGSTER_HOME", str(stack.dagster_home))
        os.kill(pid, signal.SIGKILL)
        assert wait_for_run(instance, stack, victim.run_id) == DagsterRunStatus.FAILURE
        llm.release_victim()  # the killed worker's held calls end without an answer

        others = [r.run_id for r in backfill_runs() if r.run_id != victim.run_id]
        for run_id in others:
            assert wait_for_run(instance, stack, run_id) == DagsterRunStatus.SUCCESS, stack.tail()
        [alert] = wait_until(
            lambda: alerts_for(home, victim.run_id), 240, f"an alert for {victim.run_id}"
        )
        assert "signal 9" in alert["message"] and alert["step_key"] == "restaurant_industry_shard"

        retry = reexecute_from_failure(stack, victim.run_id)
        assert wait_for_run(instance, stack, retry) == DagsterRunStatus.SUCCESS, stack.tail()
        assert instance.get_run_by_id(retry).tags["dagster/partition"] == str(shard)

        # Four at a time, never more (from the runs' own start and end times).
        shard_runs = instance.get_run_records(RunsFilter(run_ids=[*others, victim.run_id, retry]))
        assert len(shard_runs) == N_SHARDS + 1
        assert max_overlap(shard_runs) == RUNS_AT_ONCE

        # Every restaurant answered and paid for exactly once across the nine runs; the calls cut
        # off by the kill were never answered, and the re-execution paid only for what was left.
        assert llm.dropped >= 1
        assert set(llm.paid) == texts and set(llm.paid.values()) == {1}
        rows = ledger_rows(pg)
        assert len(rows) == len(texts) and {s for _, s, _ in rows} == {"ok"}
        assert llm.requests == llm.answered + llm.dropped
        assert llm.answered == len(texts)
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        try:
            per_restaurant = con.execute(
                "SELECT count(*), count(DISTINCT restaurant_id), "
                "(SELECT count(*) FROM restaurants) FROM restaurant_industry_shards"
            ).fetchone()
        finally:
            con.close()
        assert per_restaurant[0] == per_restaurant[1] == per_restaurant[2] == N_RESTAURANTS

        # The assembly reuses every shard label: no call, no new ledger row.
        calls_before = llm.requests
        assemble = launch_assets(stack, "restaurant_industry")
        assert wait_for_run(instance, stack, assemble) == DagsterRunStatus.SUCCESS, stack.tail()
        assert llm.requests == calls_before
        assert len(ledger_rows(pg)) == len(texts)
        event = instance.get_latest_materialization_event(AssetKey("restaurant_industry"))
        assert event is not None and event.run_id == assemble
        metadata = event.asset_materialization.metadata
        assert metadata["reused_from_shards"].value == N_RESTAURANTS
        assert metadata["labeled_here"].value == 0
