"""The `recsys` command line, through the installed console script where startup matters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from recsys_assets.alerts import MODEL_QUALITY, Alert, alert_store
from recsys_assets.cli import _register_optional, app

_register_optional()
runner = CliRunner()


def test_generate_sample_csv(tmp_path):
    out = tmp_path / "sample"
    result = runner.invoke(
        app, ["generate-sample", "--out", str(out), "--scale", "small", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    restaurants = pd.read_csv(out / "restaurants.csv")
    assert len(restaurants) == 2000
    assert (out / "ground_truth" / "restaurant_truth.parquet").exists()
    assert "industry" not in restaurants.columns  # the truth stays in its own folder


def test_generate_sample_rejects_bad_scale(tmp_path):
    result = runner.invoke(app, ["generate-sample", "--out", str(tmp_path), "--scale", "huge"])
    assert result.exit_code == 2 and "--scale" in result.output


def test_bad_setting_is_a_clear_error(recsys_home, monkeypatch):
    monkeypatch.setenv("RECSYS_SAMPLE_SCALE", "gigantic")
    result = runner.invoke(app, ["alerts"])
    assert result.exit_code == 2 and "RECSYS_SAMPLE_SCALE" in result.output


def test_alerts_lists_recorded_alerts(recsys_home):
    alert_store(recsys_home).record(
        Alert(kind=MODEL_QUALITY, message="challenger rejected: ndcg 0.31 < 0.35")
    )
    result = runner.invoke(app, ["alerts", "--json"])
    assert result.exit_code == 0
    [row] = [json.loads(line) for line in result.output.splitlines()]
    assert row["kind"] == MODEL_QUALITY and "rejected" in row["message"]
    assert "model_quality" in runner.invoke(app, ["alerts"]).output


def test_materialize_selection_then_summary(recsys_home, tmp_path, monkeypatch):
    from recsys_assets.sample_data import generate_sample

    generate_sample(tmp_path / "d", n_restaurants=150, seed=5, fmt="csv")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "d"))
    result = runner.invoke(app, ["materialize", "--select", "restaurants,restaurant_industry"])
    assert result.exit_code == 0, result.output
    summary = runner.invoke(app, ["summary"])
    assert summary.exit_code == 0, summary.output
    assert "restaurant_industry" in summary.output and "Label distribution" in summary.output


def test_console_script_rebuild_exits_with_its_code_and_flushed_output(recsys_home, tmp_path):
    """The console script ends a rebuild without the interpreter's teardown (cli._leave): the
    exit code, the terminal lines and the run's log file are still all there."""
    import os

    from recsys_assets.sample_data import generate_sample

    generate_sample(tmp_path / "d", n_restaurants=150, seed=5, fmt="csv")
    recsys = Path(sys.executable).parent / "recsys"
    env = {**os.environ, "RECSYS_DATA_DIR": str(tmp_path / "d"), "RECSYS_LABELER": "offline"}

    def materialize(asset: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(recsys), "materialize", "--select", asset],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    out = materialize("restaurants")
    assert out.returncode == 0, out.stderr
    assert "done    restaurants" in out.stderr and "materialize succeeded" in out.stdout
    (log,) = (recsys_home / "logs").glob("*.log")
    assert log.read_text().rstrip().splitlines()[-1].split(" - ")[-2:] == [
        "RUN_SUCCESS",
        'Finished execution of run for "rebuild_job".',
    ]
    bad = materialize("restaurantz")
    assert bad.returncode == 2
    assert bad.stderr.rstrip().splitlines()[-1].startswith("error: no asset named restaurantz")


def test_leave_waits_for_a_running_worker(monkeypatch):
    """With a non-daemon thread alive `_leave` returns (the normal exit joins the thread)."""
    import threading

    from recsys_assets import cli

    exits = []
    monkeypatch.setattr("os._exit", exits.append)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        cli._leave(0)
    finally:
        stop.set()
        worker.join()
    assert exits == []


def test_console_script_is_installed():
    recsys = Path(sys.executable).parent / "recsys"
    out = subprocess.run([str(recsys), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("generate-sample", "label", "ledger", "demo", "alerts"):
        assert command in out.stdout


def test_help_is_plain_without_type_tags():
    """Flags are listed as flags: no `<bool>` tag, no box drawing (issue 14)."""
    result = runner.invoke(app, ["materialize", "--help"])
    assert result.exit_code == 0
    assert "--verbose" in result.output and "--select" in result.output
    assert "<bool>" not in result.output and "╭" not in result.output


def test_usage_error_is_one_plain_last_line():
    """Usage errors look like the commands' own errors: plain text, the cause on the last line."""
    out = subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", "recommend", "--menu", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "Error: Missing option '--name'."
    assert "╭" not in out.stderr and "Traceback" not in out.stderr


def test_counts_agree_with_their_noun():
    from recsys_assets.text import count

    assert [count(n, "row") for n in (0, 1, 2, 1234)] == ["0 rows", "1 row", "2 rows", "1,234 rows"]
    assert count(1, "inquiry", "inquiries") == "1 inquiry"
    assert count(3, "inquiry", "inquiries") == "3 inquiries"


def test_no_dagster_yaml_in_the_repository_root():
    """`dagster dev` warns that a dagster.yaml in the folder it starts in "will not be used" when
    DAGSTER_HOME points elsewhere (`make ui` starts it here); the project's file lives in the
    package and is put into DAGSTER_HOME."""
    root = Path(__file__).resolve().parents[1]
    assert not (root / "dagster.yaml").exists() and not (root / "dagster.yml").exists()
    assert (root / "recsys_assets" / "dagster.yaml").exists()
