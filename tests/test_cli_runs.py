"""Runs of `recsys materialize` as cron runs them: a real CLI process, no daemon, a real instance.

Failed runs are alerted once with their real cause on the last line, runs killed with -9 are
found and failed at the next start, every start uses the project's instance settings, and two
starts at once never trip over each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from recsys_assets.instance import PACKAGED_DAGSTER_YAML, ensure_dagster_yaml
from recsys_assets.orchestration.resources import AlertsResource, RecsysConfig
from recsys_assets.orchestration.sensors import failure_alert_sensor
from recsys_assets.run_markers import BUSY_EXIT_CODE
from recsys_assets.sample_data import generate_sample
from tests.fake_openai_server import FakeOpenAI
from tests.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[1]
MAX_FAILURE_LINES = 15


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL"}}
    env.update({"PYTHONPATH": str(REPO), "RECSYS_LABELER": "offline", **extra})
    return env


def recsys(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "recsys_assets.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll a condition with a deadline; fail at once if the process ends first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended early ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def alerts_json(env: dict[str, str]) -> list[dict]:
    out = recsys("alerts", "--json", env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def open_instance(recsys_home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(recsys_home / "dagster"))


@pytest.fixture
def bad_data(tmp_path) -> Path:
    """A restaurants file without its `menu` column."""
    data = tmp_path / "bad_data"
    data.mkdir()
    (data / "restaurants.csv").write_text(
        "restaurant_id,name,signup_date\nR1,교촌치킨,2024-01-02\nR2,김밥천국,2024-02-03\n"
    )
    return data


@pytest.fixture
def good_data(tmp_path) -> Path:
    generate_sample(tmp_path / "good_data", n_restaurants=40, seed=3, fmt="csv")
    return tmp_path / "good_data"


def test_failed_cli_run_is_alerted_once_and_posted(recsys_home, bad_data):
    """Row 3: a failed `recsys materialize` (cron, no daemon) is in `recsys alerts` and the
    webhook, once, even when the daemon's failure sensor sees the same run afterwards."""
    with WebhookReceiver() as hook:
        env = cli_env(RECSYS_DATA_DIR=str(bad_data), RECSYS_ALERT_WEBHOOK=hook.url)
        out = recsys("materialize", "--select", "restaurants", env=env)
        assert out.returncode == 1, out.stderr

        with open_instance(recsys_home) as instance:
            [run] = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.FAILURE
            [alert] = alerts_json(env)
            assert alert["run_id"] == run.run_id and alert["kind"] == "system_failure"
            assert alert["step_key"] == "restaurants" and alert["error_class"] == "IngestError"
            assert "menu" in alert["message"] and "restaurants.csv" in alert["message"]
            assert alert["posted"] == 1
            assert "recsys materialize" in alert["remedy"]
            assert [p["run_id"] for p in hook.payloads] == [run.run_id]

            # The daemon's failure sensor watches in-process runs too: seeing this run again
            # must not make a second alert or a second post.
            [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            context = dg.build_run_status_sensor_context(
                sensor_name="failure_alert_sensor",
                dagster_event=failure.dagster_event,
                dagster_instance=instance,
                dagster_run=run,
                resources={
                    "recsys": RecsysConfig(home=str(recsys_home)),
                    "alerts": AlertsResource(store_dir=str(recsys_home), webhook_url=hook.url),
                },
            ).for_run_failure()
            failure_alert_sensor(context)
        assert [a["id"] for a in alerts_json(env)] == [alert["id"]]
        assert len(hook.payloads) == 1


def test_failure_ends_with_the_asset_file_and_cause(recsys_home, bad_data):
    """Row 13: the last line names the asset, the file and the problem; the trace goes to the
    run's log file (or the terminal with --verbose), not into the normal output."""
    env = cli_env(RECSYS_DATA_DIR=str(bad_data))
    out = recsys("materialize", "--select", "restaurants", env=env)
    assert out.returncode == 1
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) <= MAX_FAILURE_LINES, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: restaurants: IngestError:"), last
    assert str(bad_data / "restaurants.csv") in last and "menu" in last
    assert "Traceback" not in out.stderr and "Stack Trace" not in out.stderr
    with open_instance(recsys_home) as instance:
        [run] = instance.get_runs()
    log = recsys_home / "logs" / f"{run.run_id}.log"
    assert str(log) in out.stderr
    assert "Stack Trace" in log.read_text() and "missing required column" in log.read_text()

    verbose = recsys("materialize", "--select", "restaurants", "--verbose", env=env)
    assert verbose.returncode == 1 and "Stack Trace" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("error: restaurants: IngestError:")


def test_failed_demo_is_alerted_and_ends_with_every_cause(recsys_home, bad_data):
    """Rows 3 and 13 for `recsys demo`: two steps fail (no products file, no menu column); both
    causes close the output, one alert covers the run."""
    out = recsys("demo", env=cli_env(RECSYS_DATA_DIR=str(bad_data)))
    assert out.returncode == 1
    assert len((out.stdout + out.stderr).strip().splitlines()) <= MAX_FAILURE_LINES, out.stderr
    last_two = out.stderr.strip().splitlines()[-2:]
    assert sorted(line.split(":")[1].strip() for line in last_two) == ["products", "restaurants"]
    assert any("no products file" in line for line in last_two)
    assert any("restaurants.csv" in line and "menu" in line for line in last_two)
    [alert] = alerts_json(cli_env())
    assert "1 more failed step" in alert["message"]


def test_unknown_asset_in_select_runs_nothing(recsys_home):
    """A typo is two short lines, no traceback: the valid names, then the cause with the fix."""
    out = recsys("materialize", "--select", "restaurant,orders,zzz", env=cli_env())
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stdout == ""
    names, last = out.stderr.strip().splitlines()
    assert names.startswith("assets: ") and "restaurant_industry" in names  # the valid ones
    assert last == (
        "error: no asset named restaurant (did you mean restaurants?), zzz in rebuild_job"
    )
    with open_instance(recsys_home) as instance:
        assert instance.get_runs() == []


def test_fresh_home_runs_on_the_project_instance_settings(tmp_path, good_data):
    """Row 5: `recsys materialize` on a fresh RECSYS_HOME (DAGSTER_HOME unset) writes the
    project's dagster.yaml and runs on it: telemetry off, pools, run monitoring."""
    home = tmp_path / "fresh_home"
    env = cli_env(RECSYS_HOME=str(home), RECSYS_DATA_DIR=str(good_data))
    env.pop("DAGSTER_HOME", None)
    out = recsys("materialize", "--select", "restaurants", env=env)
    assert out.returncode == 0, out.stderr
    assert "Telemetry" not in out.stderr and "No dagster instance configuration" not in out.stderr
    written = home / "dagster" / "dagster.yaml"
    assert written.read_text() == PACKAGED_DAGSTER_YAML.read_text()
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert instance.telemetry_enabled is False
        assert instance.run_monitoring_enabled is True
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.run_queue_config.max_concurrent_runs == 2
        # The CLI's run went through the `warehouse` pool like a daemon-launched one.
        assert "warehouse" in instance.event_log_storage.get_concurrency_keys()
        [run] = instance.get_runs()
        assert run.tags["recsys/launched_by"] == "cli" and run.status == dg.DagsterRunStatus.SUCCESS
        # A run of rebuild_job in the project's code location, as the UI lists a job's runs
        # (its Runs tab filters on the repository tag, the timeline on the origin).
        assert run.job_name == "rebuild_job"
        assert run.remote_job_origin.repository_origin.get_label() == "__repository__@recsys_assets"
        [record] = instance.get_run_records(
            dg.RunsFilter(
                job_name="rebuild_job", tags={".dagster/repository": "__repository__@recsys_assets"}
            )
        )
        assert record.dagster_run.run_id == run.run_id
        assert run.asset_selection == {dg.AssetKey("restaurants")}


def test_an_operators_dagster_yaml_is_kept_and_the_difference_named(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    own = "telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    assert ensure_dagster_yaml(home) == ["concurrency", "run_monitoring"]
    assert (home / "dagster.yaml").read_text() == own


def test_starts_at_once_on_a_fresh_home_never_collide(tmp_path, good_data):
    """Row 6: three `recsys materialize` started together on a fresh RECSYS_HOME: the storage is
    set up once; each run succeeds or says in one line that another rebuild is running."""
    home = tmp_path / "fresh_home"
    env = cli_env(
        RECSYS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), RECSYS_DATA_DIR=str(good_data)
    )
    procs = [spawn("materialize", "--select", "restaurants,products", env=env) for _ in range(3)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    for code, _out, err in results:
        assert "Traceback" not in err and "alembic" not in err, err
        assert code in (0, BUSY_EXIT_CODE), err
        if code == BUSY_EXIT_CODE:
            [line] = err.strip().splitlines()
            assert line.startswith("error: another rebuild is running") and "pid" in line
    assert any(code == 0 for code, _, _ in results)
    with open_instance(home) as instance:
        runs = instance.get_runs()
        assert len(runs) == sum(code == 0 for code, _, _ in results)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)


def test_first_starts_set_up_the_storage_once(tmp_path):
    """Row 6: processes opening a fresh instance together (CLI runs, the crash check) do not race
    on creating its SQLite schema. One process imports the code, then forks the four that open the
    instance at once (four cold starts of Dagster would cost seconds of CPU each, not add a race)."""
    home = tmp_path / "fresh_home"
    env = cli_env(RECSYS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    code = (
        "import os, sys, traceback\n"
        "from recsys_assets.config import load_settings\n"
        "from recsys_assets.orchestration.cli_runs import open_instance\n"
        "pids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        code = 1\n"
        "        try:\n"
        "            print(open_instance(load_settings()).get_runs_count(), flush=True)\n"
        "            code = 0\n"
        "        except BaseException:\n"
        "            traceback.print_exc()\n"
        "        finally:\n"
        "            sys.stderr.flush()\n"
        "            os._exit(code)\n"
        "    pids.append(pid)\n"
        "codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]\n"
        "print('exit codes:', codes, file=sys.stderr)\n"
        "sys.exit(1 if any(codes) else 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert (out.returncode, out.stdout.split()) == (0, ["0"] * 4), out.stderr[-3000:]


@pytest.fixture
def hung_llm():
    """An OpenAI-compatible server that never answers in time: a labeling step hangs in it."""
    with FakeOpenAI(rates={"timeout": 1.0}, timeout_sleep_s=300) as server:
        server.keep_bodies = False
        yield server


def hanging_run(recsys_home: Path, data: Path, server: FakeOpenAI, **extra: str):
    env = cli_env(
        RECSYS_DATA_DIR=str(data),
        RECSYS_LABELER="llm",
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="sk-test-" + "k" * 32,
        RECSYS_LLM_TIMEOUT="240",
        **extra,
    )
    proc = spawn("materialize", "--select", "restaurants,restaurant_industry", env=env)
    wait_until(lambda: server.in_flight >= 1, proc)  # restaurant_industry is waiting on the model
    return proc, env


def test_second_materialize_while_one_runs_is_busy(recsys_home, good_data, hung_llm):
    """Row 6: while a rebuild runs, another says so in one line (exit 75) and changes nothing."""
    first, env = hanging_run(recsys_home, good_data, hung_llm)
    try:
        second = recsys("materialize", "--select", "restaurants", env=env, timeout=120)
    finally:
        first.kill()
        first.communicate()
    assert second.returncode == BUSY_EXIT_CODE, second.stderr
    [line] = second.stderr.strip().splitlines()
    assert "another rebuild is running" in line and f"pid {first.pid}" in line
    with open_instance(recsys_home) as instance:
        assert len(instance.get_runs()) == 1  # the second started no run


def test_killed_run_is_failed_and_alerted_at_next_start(recsys_home, good_data, hung_llm):
    """Row 4: kill -9 of `recsys materialize` mid-step; the next `recsys alerts` finds the dead
    run, marks it failed, gives back its pool slot and alerts it, once."""
    with WebhookReceiver() as hook:
        proc, env = hanging_run(recsys_home, good_data, hung_llm, RECSYS_ALERT_WEBHOOK=hook.url)
        with open_instance(recsys_home) as instance:
            [run] = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED
            assert run.tags["recsys/pid"] == str(proc.pid)
            claimed = instance.event_log_storage.get_concurrency_info("llm").claimed_slots
            assert [s.run_id for s in claimed] == [run.run_id]
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.communicate()

        alerts = alerts_json(env)
        [alert] = alerts
        assert alert["run_id"] == run.run_id and alert["step_key"] == "restaurant_industry"
        assert f"pid {proc.pid}" in alert["message"] and "died" in alert["message"]
        assert [p["run_id"] for p in hook.payloads] == [run.run_id]
        with open_instance(recsys_home) as instance:
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            assert instance.event_log_storage.get_concurrency_info("llm").claimed_slots == []
        assert alerts_json(env) == alerts  # found once, alerted once
        assert len(hook.payloads) == 1


def test_storage_unsynced_while_the_run_executes_only(tmp_path, monkeypatch):
    """During a CLI run Dagster's SQLite storage (the run's event log shard, the index and the
    runs table) commits with synchronous=NORMAL and is not checkpointed at each close; the run's
    shard is created with synchronous=OFF; afterwards the connections are at SQLite's default
    again, the log is checkpointed, and every event and run update is there."""
    import sqlalchemy
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME

    from recsys_assets import sqlite_sync
    from recsys_assets.orchestration.cli_runs import _storage_unsynced

    def synchronous(shard: str | None) -> int:
        storage = instance.event_log_storage
        connect = storage._connect(shard) if shard else instance.run_storage.connect()
        with connect as conn:
            return conn.execute(sqlalchemy.text("PRAGMA synchronous")).scalar()

    levels: list[tuple[list[str], str]] = []
    real = sqlite_sync.sqlite_synchronous

    def spy(files, level):
        levels.append((sorted(Path(f).name for f in files), level))
        return real(files, level)

    monkeypatch.setattr(sqlite_sync, "sqlite_synchronous", spy)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
        storage = instance.event_log_storage
        before = synchronous(INDEX_SHARD_NAME)
        assert synchronous(None) == before
        with _storage_unsynced(instance, run.run_id):
            wal = Path(storage.path_for_shard(run.run_id) + "-wal")
            for i in range(5):
                instance.report_engine_event(f"event {i}", run)
            instance.add_run_tags(run.run_id, {"k": "v"})
            assert wal.stat().st_size > 0  # not checkpointed away at each close
            assert synchronous(run.run_id) == synchronous(INDEX_SHARD_NAME) == 1  # NORMAL
            assert synchronous(None) == 1
        assert synchronous(run.run_id) == synchronous(INDEX_SHARD_NAME) == before != 1
        assert synchronous(None) == before
        assert not wal.exists() or wal.stat().st_size == 0
        messages = [e.message for e in instance.all_logs(run.run_id)]
        assert [f"event {i}" for i in range(5)] == [m for m in messages if m.startswith("event")]
        assert instance.get_run_by_id(run.run_id).tags["k"] == "v"
        shard = f"{run.run_id}.db"
        assert levels == [([shard], "OFF"), (sorted([shard, "index.db", "runs.db"]), "NORMAL")]

    # An event log that is not SQLite's files is left alone.
    with dg.DagsterInstance.ephemeral() as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
        with _storage_unsynced(instance, run.run_id):
            instance.report_engine_event("in memory", run)
        assert [e.message for e in instance.all_logs(run.run_id)][-1] == "in memory"


def test_a_first_start_creates_dagsters_storage_unsynced_and_only_then(tmp_path, monkeypatch):
    """open_instance creates the default SQLite storage with synchronous=OFF on exactly the files
    it creates (the instance then works); a later start leaves the existing files alone."""
    from types import SimpleNamespace

    from recsys_assets import sqlite_sync
    from recsys_assets.orchestration import cli_runs

    seen: list[list[Path]] = []
    real = sqlite_sync.sqlite_synchronous

    def spy(files, level):
        seen.append(sorted(files))
        assert level == "OFF"
        return real(files, level)

    monkeypatch.setattr(sqlite_sync, "sqlite_synchronous", spy)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = SimpleNamespace(dagster_home=tmp_path / "dagster")
    expected = sorted(settings.dagster_home / p for p in cli_runs.DEFAULT_SQLITE_STORAGE)
    with cli_runs.open_instance(settings) as instance:
        assert instance.get_runs() == []
    assert seen == [expected] and all(f.exists() for f in expected)
    with cli_runs.open_instance(settings) as instance:
        assert instance.get_runs() == []
    assert seen[1] == []
