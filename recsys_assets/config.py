"""Settings read from the environment, with the embedded defaults documented in the README.

Plain Python (no Dagster import) so the CLI and the domain modules share one source of truth.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

SCALES = ("small", "medium", "large")
LABELERS = ("auto", "offline", "openai", "cascade")
# An order line above this quantity is a unit or typing error (1e308 summed to inf), not an order.
DEFAULT_MAX_QUANTITY = 1_000_000.0
# An input with this share fewer loadable rows than the table it replaces is refused (0.5: refuse
# losing more than half); so is an input with no loadable row at all.
# RECSYS_ALLOW_SHRINK=1 overrides.
DEFAULT_MAX_SHRINK = 0.5


class ConfigError(ValueError):
    """A setting has a value the pipeline cannot use; the message names the variable."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_int(name: str, default: int | None) -> int | None:
    """An integer setting; a malformed value is a ConfigError naming the variable."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    home: Path
    data_dir: Path | None
    sample_scale: str
    seed: int
    labeler: str
    llm_model: str
    openai_base_url: str | None
    has_openai_key: bool
    duckdb_memory_limit: str
    duckdb_threads: int
    ledger_url: str | None = None
    max_quantity: float = DEFAULT_MAX_QUANTITY
    max_shrink: float = DEFAULT_MAX_SHRINK
    allow_shrink: bool = False

    # Everything the pipeline writes lives under `home`.
    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def warehouse_database(self) -> str:
        """What DuckDB opens: RECSYS_WAREHOUSE_DB (e.g. a MotherDuck `md:` database) or the file."""
        return _env("RECSYS_WAREHOUSE_DB") or str(self.warehouse_path)

    @property
    def ledger_path(self) -> Path:
        return self.home / "labeling_ledger.sqlite"

    @property
    def mlflow_db_path(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return _env("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db_path}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def sample_dir(self) -> Path:
        """Where generated sample data lands when RECSYS_DATA_DIR is unset."""
        return self.home / "sample" / f"{self.sample_scale}-seed{self.seed}"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def logs_dir(self) -> Path:
        """Full logs of `recsys materialize`/`demo` runs, one file per run id."""
        return self.home / "logs"

    @property
    def dagster_home(self) -> Path:
        return Path(_env("DAGSTER_HOME") or self.home / "dagster")

    def resolved_labeler(self) -> str:
        """`auto` means the LLM when a key is configured, the offline labeler otherwise."""
        if self.labeler == "auto":
            return "openai" if self.has_openai_key else "offline"
        return self.labeler


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; keyword overrides (same names as the fields) win.

    The Dagster resource passes its configured values as overrides, so the UI's run config and
    the environment agree on one set of names.
    """
    settings = _from_env()
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return settings
    if "home" in clean:
        clean["home"] = Path(str(clean["home"])).expanduser().resolve()
    if "data_dir" in clean:
        clean["data_dir"] = Path(str(clean["data_dir"])).expanduser().resolve()
    if clean.get("sample_scale") not in (None, *SCALES):
        raise ConfigError(f"sample_scale must be one of {', '.join(SCALES)}, got {clean['sample_scale']!r}")
    if clean.get("labeler") not in (None, *LABELERS):
        raise ConfigError(f"labeler must be one of {', '.join(LABELERS)}, got {clean['labeler']!r}")
    return replace(settings, **clean)


def _from_env() -> Settings:
    home = Path(_env("RECSYS_HOME", "./.recsys")).expanduser().resolve()
    data_dir_raw = _env("RECSYS_DATA_DIR")
    scale = (_env("RECSYS_SAMPLE_SCALE", "small") or "small").lower()
    if scale not in SCALES:
        raise ConfigError(f"RECSYS_SAMPLE_SCALE must be one of {', '.join(SCALES)}, got {scale!r}")
    labeler = (_env("RECSYS_LABELER", "auto") or "auto").lower()
    if labeler not in LABELERS:
        raise ConfigError(f"RECSYS_LABELER must be one of {', '.join(LABELERS)}, got {labeler!r}")
    return Settings(
        home=home,
        data_dir=Path(data_dir_raw).expanduser().resolve() if data_dir_raw else None,
        sample_scale=scale,
        seed=env_int("RECSYS_SEED", 42),
        labeler=labeler,
        llm_model=_env("RECSYS_LLM_MODEL", "gpt-4o-mini") or "gpt-4o-mini",
        openai_base_url=_env("OPENAI_BASE_URL"),
        has_openai_key=bool(_env("OPENAI_API_KEY")),
        duckdb_memory_limit=_env("RECSYS_DUCKDB_MEMORY_LIMIT", "4GB") or "4GB",
        duckdb_threads=env_int("RECSYS_DUCKDB_THREADS", os.cpu_count() or 2),
        ledger_url=_env("RECSYS_LEDGER_URL"),
        max_quantity=_positive("RECSYS_MAX_QUANTITY", DEFAULT_MAX_QUANTITY),
        max_shrink=_share("RECSYS_MAX_SHRINK", DEFAULT_MAX_SHRINK),
        allow_shrink=env_bool("RECSYS_ALLOW_SHRINK", False),
    )


def env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _share(name: str, default: float) -> float:
    value = env_float(name, default)
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be between 0 and 1, got {value!r}")
    return value


def _positive(name: str, default: float) -> float:
    value = env_float(name, default)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return value
