"""`recsys model status`: the registered versions with aliases, kind, NDCG, date and the gate's reason.

Fast on purpose (no MLflow import, ~2 s): with the default sqlite registry the tables are read
read-only with the standard library, as `recommend`'s fast path reads the champion alias. Any other
tracking URI (or a schema surprise) goes through MLflow's client, search only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from recsys_assets.ranking.names import MODEL_NAME

if TYPE_CHECKING:  # pragma: no cover
    from recsys_assets.config import Settings

_TAGS = ("kind", "baseline", "holdout_ndcg_at_10", "ndcg_at_10_at_training", "promotion_decision",
         "promotion_reason", "cutoff")  # fmt: skip


@dataclass
class VersionStatus:
    version: str
    created: datetime | None
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        kind = self.tags.get("kind", "ranker")
        return f"baseline:{self.tags['baseline']}" if kind == "baseline" else kind

    @property
    def ndcg(self) -> str:
        value = self.tags.get("holdout_ndcg_at_10") or self.tags.get("ndcg_at_10_at_training")
        return f"{float(value):.4f}" if value else "-"


def _sqlite_versions(path: Path) -> list[VersionStatus] | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        rows = con.execute(
            "SELECT version, creation_time FROM model_versions WHERE name = ? ORDER BY version",
            (MODEL_NAME,),
        ).fetchall()
        out = {
            str(v): VersionStatus(str(v), datetime.fromtimestamp(t / 1000, tz=UTC) if t else None)
            for v, t in rows
        }
        marks = ",".join("?" * len(_TAGS))
        for key, value, version in con.execute(
            f"SELECT key, value, version FROM model_version_tags WHERE name = ? AND key IN ({marks})",
            (MODEL_NAME, *_TAGS),
        ):
            if str(version) in out:
                out[str(version)].tags[key] = value
        for alias, version in con.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias",
            (MODEL_NAME,),
        ):
            if str(version) in out:
                out[str(version)].aliases.append(alias)
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return list(out.values())


def _mlflow_versions(settings: Settings) -> list[VersionStatus]:
    from recsys_assets.ranking.registry import configure_mlflow

    client = configure_mlflow(settings)
    found = client.search_model_versions(f"name = '{MODEL_NAME}'")
    out = []
    for mv in sorted(found, key=lambda v: int(v.version)):
        created = (
            datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC)
            if mv.creation_timestamp
            else None
        )
        tags = {k: v for k, v in (mv.tags or {}).items() if k in _TAGS}
        out.append(VersionStatus(str(mv.version), created, sorted(mv.aliases or []), tags))
    return out


def versions(settings: Settings) -> list[VersionStatus]:
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.exists():
            return []
        found = _sqlite_versions(path)
        if found is not None:
            return found
    return _mlflow_versions(settings)


def format_status(rows: list[VersionStatus], reason_width: int = 110) -> list[str]:
    """One line per version, newest first; the gate's reason cut at `reason_width`."""
    head = f"{'version':>7}  {'aliases':<28} {'kind':<32} {'ndcg@10':>8}  {'created (UTC)':<16}"
    lines = [f"{head}  decision"]
    for r in reversed(rows):
        created = r.created.strftime("%Y-%m-%d %H:%M") if r.created else "-"
        reason = r.tags.get("promotion_reason", "")
        decision = r.tags.get("promotion_decision", "-")
        if reason:
            short = reason if len(reason) <= reason_width else reason[: reason_width - 1] + "…"
            decision = f"{decision}: {short}"
        lines.append(
            f"{r.version:>7}  {','.join(r.aliases) or '-':<28} {r.kind:<32} {r.ndcg:>8}  "
            f"{created:<16}  {decision}"
        )
    return lines
