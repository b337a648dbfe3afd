"""Regenerate the README's Dagster screenshots from a real run (docs/img/*.png).

    PYTHONPATH=. .venv/bin/python docs/screenshots.py            # writes docs/img/
    PYTHONPATH=. .venv/bin/python docs/screenshots.py --out /tmp/shots

Starts the real webserver and daemon on a fresh, throw-away Dagster home (tests/e2e/stack.py),
launches `rebuild_job` on a small generated sample over GraphQL, waits until it succeeds, then
photographs the asset graph and the `ranker_evaluation` asset page in headless Chromium (Debian's
chromium + chromedriver, as the browser end-to-end test uses). A run that does not succeed stops
the script: a README screenshot never shows a failed materialization.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recsys_assets.sample_data import generate_sample  # noqa: E402
from tests.e2e.stack import DagsterStack, wait_until  # noqa: E402

# Materialized nodes of the graph get a green border (ui-core AssetNode: --minimal-border).
_GREEN_NODES = (
    "return Array.from(document.querySelectorAll('[style*=\"--minimal-border\"]'))"
    ".filter(e => e.getAttribute('style').includes('green')).length"
)
_IMAGES_LOADED = "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"

SHOTS = {
    # file name: (path in the UI, texts that must be on the page, window height, (script, minimum))
    "asset_graph.png": (
        "/assets/recommendations?view=lineage&lineageScope=upstream&lineageDepth=10",
        ("ingest", "labeling", "warehouse", "ranking", "ranker_model", "recommendations"),
        1000,
        (_GREEN_NODES, 12),  # every asset of rebuild_job
    ),
    "ranker_evaluation.png": (
        "/assets/ranker_evaluation",
        ("metrics_vs_baselines", "industry_popularity", "feature_importance", "ndcg_at_k_curve"),
        1750,  # tall enough for the metadata table down to the inline plots
        (_IMAGES_LOADED, True),
    ),
}


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1600,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(
        options=options, service=Service(shutil.which("chromedriver") or "chromedriver")
    )


def _rebuild(stack: DagsterStack) -> str:
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=stack.port, timeout=60)
    run_id = client.submit_job_execution("rebuild_job")
    status = wait_until(
        lambda: (
            (s := client.get_run_status(run_id).value) in {"SUCCESS", "FAILURE", "CANCELED"} and s
        ),
        900,
        f"rebuild_job run {run_id}",
        interval=1.0,
    )
    if status != "SUCCESS":
        raise SystemExit(f"rebuild_job ended {status}: no screenshot taken\n{stack.tail()}")
    return run_id


def _photograph(stack: DagsterStack, out: Path, profile: Path) -> list[Path]:
    from tests.e2e.test_dagster_e2e import dismiss_community_dialog

    driver = _browser(profile)
    written = []
    try:
        for name, (path, texts, height, (script, minimum)) in SHOTS.items():
            driver.set_window_size(1600, height)
            driver.get(stack.url + path)
            dismiss_community_dialog(driver)
            for text in texts:
                wait_until(lambda t=text: t in driver.page_source, 120, f"{text!r} on {path}")
            wait_until(
                lambda s=script, m=minimum: (driver.execute_script(s) or 0) >= m,
                60,
                f"{path} fully drawn",
            )
            written.append(out / name)
            driver.save_screenshot(str(written[-1]))
    finally:
        driver.quit()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--restaurants", type=int, default=400)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="recsys-shots-") as tmp:
        root = Path(tmp)
        generate_sample(root / "data", n_restaurants=args.restaurants, seed=11, fmt="csv")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "MLFLOW_TRACKING_URI"}
        }
        env.update(
            RECSYS_HOME=str(root / "home"),
            DAGSTER_HOME=str(root / "home" / "dagster"),
            RECSYS_DATA_DIR=str(root / "data"),
            RECSYS_LABELER="offline",
        )
        (root / "home" / "dagster").mkdir(parents=True)
        stack = DagsterStack(dagster_home=root / "home" / "dagster", env=env)
        try:
            stack.start()
            run_id = _rebuild(stack)
            written = _photograph(stack, args.out, root / "chrome-profile")
        finally:
            stack.stop()
    for path in written:
        print(f"{path} ({path.stat().st_size:,} bytes)")
    print(f"screenshots of run {run_id} in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
