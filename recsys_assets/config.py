"""Settings read from the environment, with the embedded defaults documented in the README.

This module is the only reader (and writer) of the process environment in the package: every
RECSYS_* variable becomes a typed field of `Settings` here, and the domain modules receive the
values they need as arguments. Plain Python (no Dagster import) so the CLI and the Dagster
resources build from one source of truth. tests/test_settings.py enforces the rule.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

SCALES = ("small", "medium", "large")
DEFAULT_WORLD = "default"  # the sample generator's own world (recsys_assets/data/worlds.yaml)
LABELERS = ("auto", "offline", "llm", "cascade")
# Deprecated spellings still accepted: `openai` was the LLM labeler's old name (the `source`
# column always said `llm`).
LABELER_ALIASES = {"openai": "llm"}
DEFAULT_LLM_MODEL = "gpt-4o-mini"
# How the answer's JSON shape is requested: `auto` probes json_schema -> tool -> json_object on the
# first call of a run and keeps the first one the server accepts (docs/labeling.md).
STRUCTURED_METHODS = ("auto", "json_schema", "tool", "json_object")
LLM_MODES = ("online", "batch")  # how the LLM is asked: one call per request, or the Batch API
DEFAULT_LEASE_SECONDS = 600.0
DEFAULT_CASCADE_MARGIN = 0.35
# A retrain on the same data differs from the champion only by floating-point noise (DuckDB's
# parallel sums); a champion should not change hands for that.
DEFAULT_PROMOTION_MARGIN = 0.001
DEFAULT_NDCG_FLOOR = 0.0
DEFAULT_REBUILD_CRON = "0 5 * * 1"  # Monday 05:00
DEFAULT_REBUILD_TIMEZONE = "Asia/Seoul"
# An order line above this quantity is a unit or typing error (1e308 summed to inf), not an order.
DEFAULT_MAX_QUANTITY = 1_000_000.0
# An input with this share fewer loadable rows than the table it replaces is refused (0.5: refuse
# losing more than half); so is an input with no loadable row at all.
# RECSYS_ALLOW_SHRINK=1 overrides.
DEFAULT_MAX_SHRINK = 0.5


class ConfigError(ValueError):
    """A setting has a value the pipeline cannot use; the message names the variable."""


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
@overload
def _env(name: str, default: str | None) -> str | None: ...
def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


@overload
def env_int(name: str, default: int) -> int: ...
@overload
def env_int(name: str, default: None) -> int | None: ...
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


class Secret:
    """A secret value (API key, webhook URL) that never shows in repr, str, logs or metadata."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _secret(name: str) -> Secret | None:
    raw = _env(name)
    return Secret(raw) if raw else None


@dataclass(frozen=True)
class LLMSettings:
    """The LLM labeler: provider, limits and prices (RECSYS_LLM_*, OPENAI_*)."""

    model: str = DEFAULT_LLM_MODEL
    base_url: str | None = None
    api_key: Secret | None = field(default=None, repr=False)
    timeout_s: float = 30.0  # a call labeling one restaurant (RECSYS_LLM_TIMEOUT)
    timeout_per_item_s: float = 10.0  # added per further restaurant in a call (micro-batching)
    structured: str = "auto"  # one of STRUCTURED_METHODS (RECSYS_LLM_STRUCTURED)
    max_tokens: int | None = None  # None: sized to the answer schema x items per call
    price_in: float | None = None  # USD per 1M tokens; None: the built-in table
    price_out: float | None = None
    max_concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    items_per_call: int = 1
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    breaker_threshold: int = 20
    cascade_margin: float = DEFAULT_CASCADE_MARGIN
    # Seconds per call a dry run assumes (None: the ledger's median for these settings, else a
    # default for a hosted model): RECSYS_LLM_ASSUMED_LATENCY.
    assumed_latency_s: float | None = None
    cascade_routing: str | None = None  # RECSYS_CASCADE_ROUTING; None: the packaged routing file
    # Cached input tokens cost this share of the input price (RECSYS_LLM_CACHED_PRICE_FACTOR);
    # the Batch API this share of the online price (RECSYS_LLM_BATCH_PRICE_FACTOR).
    cached_price_factor: float = 0.5
    batch_price_factor: float = 0.5
    mode: str = "online"  # online | batch (RECSYS_LLM_MODE): how the LLM is asked
    batch_poll_s: float = 30.0  # between two looks at a running batch (RECSYS_LLM_BATCH_POLL)

    @property
    def api_key_value(self) -> str | None:
        return self.api_key.get() if self.api_key else None


@dataclass(frozen=True)
class LedgerSettings:
    """The labeling ledger: RECSYS_LEDGER_URL (None: the SQLite file under home) and the lease."""

    url: str | None = field(default=None, repr=False)  # may hold a database password
    lease_seconds: float = DEFAULT_LEASE_SECONDS


@dataclass(frozen=True)
class RankingSettings:
    """The ranker's data split, promotion gate and rebuild schedule."""

    cutoff: str | None = None  # RECSYS_RANK_CUTOFF; None: the start of the last holdout window
    promotion_margin: float = DEFAULT_PROMOTION_MARGIN
    ndcg_floor: float = DEFAULT_NDCG_FLOOR
    mlflow_tracking_uri: str | None = None  # None: the sqlite store under home
    mlflow_artifact_root: str | None = None  # None: home/mlartifacts
    rebuild_cron: str = DEFAULT_REBUILD_CRON
    rebuild_timezone: str = DEFAULT_REBUILD_TIMEZONE


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: Secret | None = field(default=None, repr=False)  # RECSYS_ALERT_WEBHOOK

    @property
    def webhook_url_value(self) -> str | None:
        return self.webhook_url.get() if self.webhook_url else None


@dataclass(frozen=True)
class Settings:
    home: Path
    data_dir: Path | None
    sample_scale: str
    seed: int
    labeler: str
    duckdb_memory_limit: str
    duckdb_threads: int
    max_quantity: float = DEFAULT_MAX_QUANTITY
    max_shrink: float = DEFAULT_MAX_SHRINK
    allow_shrink: bool = False
    warehouse_db: str | None = None  # RECSYS_WAREHOUSE_DB, e.g. a MotherDuck `md:` database
    dagster_home_env: Path | None = None  # DAGSTER_HOME when set
    llm: LLMSettings = field(default_factory=LLMSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    ranking: RankingSettings = field(default_factory=RankingSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    sample_world: str = DEFAULT_WORLD  # RECSYS_SAMPLE_WORLD: the generator's world (worlds.yaml)

    @property
    def llm_model(self) -> str:
        return self.llm.model

    @property
    def has_openai_key(self) -> bool:
        return self.llm.api_key is not None

    @property
    def ledger_url(self) -> str | None:
        return self.ledger.url

    # Everything the pipeline writes lives under `home`.
    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def warehouse_database(self) -> str:
        """What DuckDB opens: RECSYS_WAREHOUSE_DB (e.g. a MotherDuck `md:` database) or the file."""
        return self.warehouse_db or str(self.warehouse_path)

    @property
    def ledger_path(self) -> Path:
        return self.home / "labeling_ledger.sqlite"

    @property
    def mlflow_db_path(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.ranking.mlflow_tracking_uri or f"sqlite:///{self.mlflow_db_path}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return Path(self.ranking.mlflow_artifact_root or self.home / "mlartifacts")

    @property
    def sample_dir(self) -> Path:
        """Where generated sample data lands when RECSYS_DATA_DIR is unset."""
        tail = "" if self.sample_world == DEFAULT_WORLD else f"-{self.sample_world}"
        return self.home / "sample" / f"{self.sample_scale}-seed{self.seed}{tail}"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def logs_dir(self) -> Path:
        """Full logs of `recsys materialize`/`demo` runs, one file per run id."""
        return self.home / "logs"

    @property
    def dagster_home(self) -> Path:
        return self.dagster_home_env or self.home / "dagster"

    def resolved_labeler(self) -> str:
        """`auto` means the LLM when a key is configured, the offline labeler otherwise."""
        if self.labeler == "auto":
            return "llm" if self.has_openai_key else "offline"
        return self.labeler


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; keyword overrides (same names as the fields) win.

    The Dagster resource passes its configured values as overrides, so the UI's run config and
    the environment agree on one set of names.
    """
    settings = _from_env()
    # Any: each override has its field's type; replace() refuses a name that is not a field.
    clean: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return settings
    if "home" in clean:
        clean["home"] = Path(str(clean["home"])).expanduser().resolve()
    if "data_dir" in clean:
        clean["data_dir"] = Path(str(clean["data_dir"])).expanduser().resolve()
    if clean.get("sample_scale") not in (None, *SCALES):
        raise ConfigError(
            f"sample_scale must be one of {', '.join(SCALES)}, got {clean['sample_scale']!r}"
        )
    if "labeler" in clean:
        clean["labeler"] = normalize_labeler(str(clean["labeler"]), "labeler")
    if "sample_world" in clean:
        clean["sample_world"] = sample_world(str(clean["sample_world"]), "sample_world")
    return replace(settings, **clean)


def sample_world(raw: str, name: str = "RECSYS_SAMPLE_WORLD") -> str:
    """A world of recsys_assets/data/worlds.yaml, or `random`; the default costs no file read."""
    world = raw.strip().lower() or DEFAULT_WORLD
    if world == DEFAULT_WORLD:
        return world
    from recsys_assets.datafiles import DATA_DIR, load_yaml

    doc = load_yaml(DATA_DIR / "worlds.yaml")
    known = [*doc["worlds"], "random"]
    if world not in known:
        raise ConfigError(f"{name} must be one of {', '.join(known)}, got {raw!r}")
    return world


def _from_env() -> Settings:
    home = Path(_env("RECSYS_HOME", "./.recsys")).expanduser().resolve()
    data_dir_raw = _env("RECSYS_DATA_DIR")
    scale = (_env("RECSYS_SAMPLE_SCALE", "small") or "small").lower()
    if scale not in SCALES:
        raise ConfigError(f"RECSYS_SAMPLE_SCALE must be one of {', '.join(SCALES)}, got {scale!r}")
    labeler = normalize_labeler(_env("RECSYS_LABELER", "auto") or "auto", "RECSYS_LABELER")
    return Settings(
        home=home,
        data_dir=Path(data_dir_raw).expanduser().resolve() if data_dir_raw else None,
        sample_scale=scale,
        seed=env_int("RECSYS_SEED", 42),
        labeler=labeler,
        duckdb_memory_limit=_env("RECSYS_DUCKDB_MEMORY_LIMIT", "4GB") or "4GB",
        duckdb_threads=env_int("RECSYS_DUCKDB_THREADS", os.cpu_count() or 2),
        max_quantity=_positive("RECSYS_MAX_QUANTITY", DEFAULT_MAX_QUANTITY),
        max_shrink=_share("RECSYS_MAX_SHRINK", DEFAULT_MAX_SHRINK),
        allow_shrink=env_bool("RECSYS_ALLOW_SHRINK", False),
        warehouse_db=_env("RECSYS_WAREHOUSE_DB"),
        dagster_home_env=Path(dh) if (dh := _env("DAGSTER_HOME")) else None,
        llm=_llm_from_env(),
        ledger=LedgerSettings(
            url=_env("RECSYS_LEDGER_URL"),
            lease_seconds=_lease("RECSYS_LEDGER_LEASE_SECONDS", DEFAULT_LEASE_SECONDS),
        ),
        ranking=RankingSettings(
            cutoff=_env("RECSYS_RANK_CUTOFF"),
            promotion_margin=env_float("RECSYS_PROMOTION_MARGIN", DEFAULT_PROMOTION_MARGIN),
            ndcg_floor=env_float("RECSYS_NDCG_FLOOR", DEFAULT_NDCG_FLOOR),
            mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI"),
            rebuild_cron=_env("RECSYS_REBUILD_CRON", DEFAULT_REBUILD_CRON) or DEFAULT_REBUILD_CRON,
            rebuild_timezone=_env("RECSYS_REBUILD_TIMEZONE", DEFAULT_REBUILD_TIMEZONE)
            or DEFAULT_REBUILD_TIMEZONE,
        ),
        alerts=AlertSettings(webhook_url=_secret("RECSYS_ALERT_WEBHOOK")),
        sample_world=sample_world(_env("RECSYS_SAMPLE_WORLD", DEFAULT_WORLD)),
    )


def _llm_from_env() -> LLMSettings:
    price_in, price_out = _env("RECSYS_LLM_PRICE_IN"), _env("RECSYS_LLM_PRICE_OUT")
    return LLMSettings(
        model=_env("RECSYS_LLM_MODEL", DEFAULT_LLM_MODEL) or DEFAULT_LLM_MODEL,
        base_url=_env("OPENAI_BASE_URL"),
        api_key=_secret("OPENAI_API_KEY"),
        timeout_s=_positive("RECSYS_LLM_TIMEOUT", 30.0),
        timeout_per_item_s=_non_negative("RECSYS_LLM_TIMEOUT_PER_ITEM", 10.0),
        structured=_choice("RECSYS_LLM_STRUCTURED", STRUCTURED_METHODS),
        max_tokens=_max_tokens("RECSYS_LLM_MAX_TOKENS"),
        price_in=env_float("RECSYS_LLM_PRICE_IN", 0.0) if price_in else None,
        price_out=env_float("RECSYS_LLM_PRICE_OUT", 0.0) if price_out else None,
        max_concurrency=_int("RECSYS_LLM_MAX_CONCURRENCY", 8),
        rpm=env_int("RECSYS_LLM_RPM", None),
        tpm=env_int("RECSYS_LLM_TPM", None),
        items_per_call=_int("RECSYS_LLM_ITEMS_PER_CALL", 1),
        max_attempts=_int("RECSYS_LLM_MAX_ATTEMPTS", 6),
        backoff_base_s=env_float("RECSYS_LLM_BACKOFF_BASE", 0.5),
        backoff_max_s=env_float("RECSYS_LLM_BACKOFF_MAX", 30.0),
        breaker_threshold=_int("RECSYS_LLM_BREAKER", 20),
        cascade_margin=_non_negative("RECSYS_CASCADE_MARGIN", DEFAULT_CASCADE_MARGIN),
        assumed_latency_s=(
            _positive("RECSYS_LLM_ASSUMED_LATENCY", 1.0)
            if _env("RECSYS_LLM_ASSUMED_LATENCY")
            else None
        ),
        cascade_routing=_env("RECSYS_CASCADE_ROUTING"),
        cached_price_factor=_non_negative("RECSYS_LLM_CACHED_PRICE_FACTOR", 0.5),
        batch_price_factor=_non_negative("RECSYS_LLM_BATCH_PRICE_FACTOR", 0.5),
        mode=_choice("RECSYS_LLM_MODE", LLM_MODES),
        batch_poll_s=_positive("RECSYS_LLM_BATCH_POLL", 30.0),
    )


def _int(name: str, default: int) -> int:
    value = env_int(name, default)
    return default if value is None else value


def _choice(name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive); the first is the default."""
    value = (_env(name, choices[0]) or choices[0]).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _max_tokens(name: str) -> int | None:
    value = env_int(name, None)
    if value is not None and value < 16:
        raise ConfigError(f"{name} must be >= 16 (an answer needs room), got {value!r}")
    return value


def _lease(name: str, default: float) -> float:
    value = env_float(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    return value


def _non_negative(name: str, default: float) -> float:
    value = env_float(name, default)
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
    return value


def normalize_labeler(value: str, name: str = "labeler") -> str:
    """A labeler name in its one spelling (`openai` -> `llm`); ConfigError naming `name` else."""
    kind = value.strip().lower()
    kind = LABELER_ALIASES.get(kind, kind)
    if kind not in LABELERS:
        raise ConfigError(f"{name} must be one of {', '.join(LABELERS)}, got {value!r}")
    return kind


def env_str(name: str) -> str | None:
    """A raw setting for an entry point that needs one variable before full settings exist."""
    return _env(name)


def configured_secrets() -> tuple[str, ...]:
    """Secrets to scrub from anything printed or stored, whoever formats the text.

    Read at call time (not from a Settings) so redaction also covers text formatted before
    settings are loaded, e.g. a ConfigError message.
    """
    return tuple(v for v in (_env("OPENAI_API_KEY"),) if v)


def set_process_env(name: str, value: str, *, overwrite: bool = True) -> None:
    """The one place the package writes the process environment: for libraries that read it
    (Dagster's DAGSTER_HOME, MLflow's progress bar, OpenMP's wait policy)."""
    if overwrite:
        os.environ[name] = value
    else:
        os.environ.setdefault(name, value)


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
