"""The Dagster asset and `recsys label` share one engine and one ledger (LLM path, real client)."""

from __future__ import annotations

import secrets
import string

import dagster as dg
import pandas as pd
from typer.testing import CliRunner

from recsys_assets.config import load_settings
from recsys_assets.definitions import build_defs
from recsys_assets.sample_data import generate_sample
from tests.fake_openai_server import FakeOpenAI


def test_asset_and_cli_share_the_ledger(recsys_home, tmp_path, monkeypatch):
    key = "sk-test-" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(32)
    )
    data = tmp_path / "data"
    files = generate_sample(data, n_restaurants=40, seed=9, fmt="csv")
    with FakeOpenAI(latency_ms=5) as server:
        monkeypatch.setenv("RECSYS_DATA_DIR", str(data))
        monkeypatch.setenv("OPENAI_API_KEY", key)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("RECSYS_LABELER", "auto")  # a key is set: auto means the LLM
        settings = load_settings()
        assert settings.resolved_labeler() == "llm"

        result = (
            build_defs(settings)
            .resolve_job_def("rebuild_job")
            .execute_in_process(
                instance=dg.DagsterInstance.ephemeral(),
                asset_selection=[dg.AssetKey("restaurants"), dg.AssetKey("restaurant_industry")],
            )
        )
        assert result.success
        distinct = pd.read_csv(files.restaurants)[["name", "menu", "description"]].drop_duplicates()
        calls_after_asset = server.requests
        assert 0 < calls_after_asset <= len(distinct)
        [mat] = result.asset_materializations_for_node("restaurant_industry")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["llm_calls"] == calls_after_asset
        # An LLM run shows what the LLM cost; the per-label counts only in the one table.
        assert meta["tokens_in"] > 0 and meta["model"] and meta["latency_p50_ms"] > 0
        assert not [k for k in meta if k.startswith("labels.")] and None not in meta.values()
        assert "| value " in meta["label_distribution"]
        assert key not in repr(meta)  # every value, the column schema included

        # The same restaurants through the CLI: every answer comes from the asset's ledger.
        from recsys_assets.cli import _register_optional, app

        _register_optional()
        out = tmp_path / "labeled.csv"
        cli = CliRunner().invoke(app, ["label", str(files.restaurants), "-o", str(out)])
        assert cli.exit_code == 0, cli.output
        assert server.requests == calls_after_asset
        labeled = pd.read_csv(out)
        assert len(labeled) == 40 and set(labeled["source"]) == {"llm"}
        assert key not in cli.output
