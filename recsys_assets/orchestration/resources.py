"""Small typed resources: pipeline settings and the DuckDB warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from recsys_assets.config import Settings, load_settings


class RecsysConfig(dg.ConfigurableResource):
    """Pipeline settings. Unset fields fall back to the RECSYS_* environment variables."""

    home: str | None = Field(default=None, description="RECSYS_HOME: where everything is written.")
    data_dir: str | None = Field(
        default=None, description="RECSYS_DATA_DIR: your restaurants/products/orders files."
    )
    sample_scale: str | None = Field(default=None, description="small | medium | large")
    seed: int | None = Field(default=None, description="Sample-data seed.")
    labeler: str | None = Field(default=None, description="auto | offline | llm | cascade (openai: deprecated alias of llm)")
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


def default_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or load_settings()
    return {
        "recsys": RecsysConfig(home=str(settings.home)),
        "warehouse": WarehouseResource(
            database=settings.warehouse_database,
            connection_config={
                "memory_limit": settings.duckdb_memory_limit,
                "threads": settings.duckdb_threads,
            },
        ),
    }
