"""The typed resources: one per external system, all built from the one settings object.

`default_resources(settings)` is the only construction path for the Dagster layer; secrets
(OPENAI_API_KEY, RECSYS_LEDGER_URL with a password, RECSYS_ALERT_WEBHOOK) go in as `dg.EnvVar`
so the UI shows the variable's name, never its value. Each resource hands the domain code a plain
settings object (`config.LLMSettings`, ...) through the same factories the CLI uses
(`LLMOptions.from_settings`, `EngineConfig.from_settings`, `configure_mlflow`, `alert_store`).
Tests substitute any of them: `dg.materialize([asset], resources={"llm": LLMResource(...)})`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from recsys_assets.alerts import Alert, alert_store
from recsys_assets.config import (
    AlertSettings,
    LedgerSettings,
    LLMSettings,
    Secret,
    Settings,
    load_settings,
)


class RecsysConfig(dg.ConfigurableResource):
    """Pipeline settings. Unset fields fall back to the RECSYS_* environment variables."""

    home: str | None = Field(default=None, description="RECSYS_HOME: where everything is written.")
    data_dir: str | None = Field(
        default=None, description="RECSYS_DATA_DIR: your restaurants/products/orders files."
    )
    sample_scale: str | None = Field(default=None, description="small | medium | large")
    seed: int | None = Field(default=None, description="Sample-data seed.")
    sample_world: str | None = Field(
        default=None, description="RECSYS_SAMPLE_WORLD: the sample generator's world (or random)."
    )
    labeler: str | None = Field(
        default=None, description="auto | offline | llm | cascade (openai: deprecated alias of llm)"
    )
    allow_shrink: bool | None = Field(
        default=None,
        description="RECSYS_ALLOW_SHRINK: load an input even if it is empty or has far fewer rows "
        "than the table it replaces (refused by default).",
    )

    def settings(self) -> Settings:
        return load_settings(
            home=self.home,
            data_dir=self.data_dir,
            sample_scale=self.sample_scale,
            seed=self.seed,
            sample_world=self.sample_world,
            labeler=self.labeler,
            allow_shrink=self.allow_shrink,
        )


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource, plus: the folder is created and the connection always closed.

    DuckDB lets one process write a file at a time; the base class retries the connect with
    backoff while another step holds the lock, and the `warehouse` pool keeps steps from queuing
    on it in the first place.
    """

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.database != ":memory:" and ":" not in self.database.split("/")[0]:
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)  # a local file
        with super().get_connection() as conn:
            try:
                yield conn
            finally:
                conn.close()


class LLMResource(dg.ConfigurableResource):
    """The LLM labeler's provider and limits (RECSYS_LLM_*, OPENAI_*)."""

    model: str = Field(description="RECSYS_LLM_MODEL")
    base_url: str | None = Field(
        default=None, description="OPENAI_BASE_URL (OpenAI-compatible server)"
    )
    api_key: str | None = Field(default=None, description="OPENAI_API_KEY, given as dg.EnvVar")
    timeout_s: float = Field(default=30.0, description="RECSYS_LLM_TIMEOUT (a one-restaurant call)")
    timeout_per_item_s: float = Field(default=10.0, description="RECSYS_LLM_TIMEOUT_PER_ITEM")
    structured: str = Field(
        default="auto", description="RECSYS_LLM_STRUCTURED: auto | json_schema | tool | json_object"
    )
    max_tokens: int | None = Field(
        default=None, description="RECSYS_LLM_MAX_TOKENS (None: sized to the answer)"
    )
    max_concurrency: int = Field(default=8, description="RECSYS_LLM_MAX_CONCURRENCY")
    rpm: int | None = Field(default=None, description="RECSYS_LLM_RPM")
    tpm: int | None = Field(default=None, description="RECSYS_LLM_TPM")
    items_per_call: int = Field(default=1, description="RECSYS_LLM_ITEMS_PER_CALL")
    max_attempts: int = Field(default=6, description="RECSYS_LLM_MAX_ATTEMPTS")
    backoff_base_s: float = Field(default=0.5, description="RECSYS_LLM_BACKOFF_BASE")
    backoff_max_s: float = Field(default=30.0, description="RECSYS_LLM_BACKOFF_MAX")
    breaker_threshold: int = Field(default=20, description="RECSYS_LLM_BREAKER")
    cascade_margin: float = Field(default=0.35, description="RECSYS_CASCADE_MARGIN")
    cascade_routing: str | None = Field(
        default=None, description="RECSYS_CASCADE_ROUTING (None: the packaged routing file)"
    )
    price_in: float | None = Field(
        default=None, description="RECSYS_LLM_PRICE_IN (USD / 1M tokens)"
    )
    price_out: float | None = Field(
        default=None, description="RECSYS_LLM_PRICE_OUT (USD / 1M tokens)"
    )
    cached_price_factor: float = Field(
        default=0.5, description="RECSYS_LLM_CACHED_PRICE_FACTOR (cached input / input price)"
    )
    batch_price_factor: float = Field(
        default=0.5, description="RECSYS_LLM_BATCH_PRICE_FACTOR (Batch API / online price)"
    )
    mode: str = Field(default="online", description="RECSYS_LLM_MODE: online | batch")
    batch_poll_s: float = Field(default=30.0, description="RECSYS_LLM_BATCH_POLL (seconds)")

    @classmethod
    def from_settings(cls, llm: LLMSettings, *, key_set: bool) -> LLMResource:
        fields = {k: getattr(llm, k) for k in cls.model_fields if k != "api_key"}
        return cls(**fields, api_key=dg.EnvVar("OPENAI_API_KEY") if key_set else None)

    def llm_settings(self) -> LLMSettings:
        values = self.model_dump(exclude={"api_key"})
        return LLMSettings(**values, api_key=Secret(self.api_key) if self.api_key else None)


class LedgerResource(dg.ConfigurableResource):
    """The labeling ledger every paid call is checkpointed in."""

    url: str | None = Field(
        default=None,
        description="RECSYS_LEDGER_URL as dg.EnvVar (None: the SQLite file in RECSYS_HOME)",
    )
    lease_seconds: float = Field(default=600.0, description="RECSYS_LEDGER_LEASE_SECONDS")

    def ledger_settings(self) -> LedgerSettings:
        return LedgerSettings(url=self.url, lease_seconds=self.lease_seconds)


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry, and the promotion gate's thresholds."""

    tracking_uri: str = Field(description="MLFLOW_TRACKING_URI (default: sqlite under RECSYS_HOME)")
    artifact_root: str = Field(description="Where model artifacts are stored")
    promotion_margin: float = Field(default=0.001, description="RECSYS_PROMOTION_MARGIN")
    ndcg_floor: float = Field(default=0.0, description="RECSYS_NDCG_FLOOR")


class AlertsResource(dg.ConfigurableResource):
    """The alert store (alerts.sqlite) and the optional webhook failed runs are posted to."""

    store_dir: str = Field(description="Folder of alerts.sqlite (RECSYS_HOME)")
    webhook_url: str | None = Field(
        default=None, description="RECSYS_ALERT_WEBHOOK, given as dg.EnvVar"
    )

    def alert_settings(self) -> AlertSettings:
        return AlertSettings(webhook_url=Secret(self.webhook_url) if self.webhook_url else None)

    def record(self, alert: Alert) -> int:
        """Store the alert (once per run) and post it to the webhook when one is configured."""
        return alert_store(Path(self.store_dir)).record(alert, webhook_url=self.webhook_url)


def run_settings(
    recsys: RecsysConfig,
    *,
    llm: LLMResource | None = None,
    ledger: LedgerResource | None = None,
    mlflow: MLflowResource | None = None,
    alerts: AlertsResource | None = None,
) -> Settings:
    """The settings an asset hands the domain code: RecsysConfig's, with each given resource's
    values in place of the environment's (so a substituted resource is what the run uses)."""
    settings = recsys.settings()
    if llm is not None:
        settings = replace(settings, llm=llm.llm_settings())
    if ledger is not None:
        settings = replace(settings, ledger=ledger.ledger_settings())
    if mlflow is not None:
        settings = replace(
            settings,
            ranking=replace(
                settings.ranking,
                mlflow_tracking_uri=mlflow.tracking_uri,
                mlflow_artifact_root=mlflow.artifact_root,
                promotion_margin=mlflow.promotion_margin,
                ndcg_floor=mlflow.ndcg_floor,
            ),
        )
    if alerts is not None:
        settings = replace(settings, alerts=alerts.alert_settings())
    return settings


def default_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every resource from the one settings object; secrets as dg.EnvVar, never as values."""
    settings = settings or load_settings()
    return {
        "recsys": RecsysConfig(home=str(settings.home)),
        "llm": LLMResource.from_settings(settings.llm, key_set=settings.has_openai_key),
        "ledger": LedgerResource(
            url=dg.EnvVar("RECSYS_LEDGER_URL") if settings.ledger.url else None,
            lease_seconds=settings.ledger.lease_seconds,
        ),
        "mlflow": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=str(settings.mlflow_artifact_root),
            promotion_margin=settings.ranking.promotion_margin,
            ndcg_floor=settings.ranking.ndcg_floor,
        ),
        "alerts": AlertsResource(
            store_dir=str(settings.home),
            webhook_url=dg.EnvVar("RECSYS_ALERT_WEBHOOK") if settings.alerts.webhook_url else None,
        ),
        "warehouse": WarehouseResource(
            database=settings.warehouse_database,
            connection_config={
                "memory_limit": settings.duckdb_memory_limit,
                "threads": settings.duckdb_threads,
            },
        ),
    }
