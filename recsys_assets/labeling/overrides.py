"""Human corrections of industry labels (overrides) and the queue of labels worth a human look.

Where overrides live, and why there:
- ``label_overrides.csv`` (or ``.csv.gz`` / ``.parquet``) in RECSYS_DATA_DIR, with columns
  restaurant_id, industry, note[, author, corrected_at]: the team's bulk list, versioned with the
  other input files. Read through the ingest's reader and checked row by row
  (warehouse/overrides.py); a bad row is quarantined in `rejected_rows` with its reason.
- ``RECSYS_HOME/label_overrides.sqlite``, written by `recsys label override`: a SQLite file of its
  own, so it survives every rebuild (no asset writes it, the ingest never replaces it) and the
  command works while a Dagster run holds the DuckDB warehouse's write lock. Every change is also
  appended to its ``override_log`` table (who, when, what), so a removal loses nothing.

The command's override of a restaurant wins over the file's (it is the explicit, later act;
removing it with `--remove` brings the file's back). An override wins over every labeler
(offline, llm, cascade, ledger answers): the row says ``source = override``, confidence 1.0, not
flagged, ``labeled_at`` = the correction's time; the overridden restaurants are not sent to any
labeler at all.

The review queue ranks the labels that most deserve a human look (`review_queue`).
Plain Python: knows nothing of Dagster.
"""

from __future__ import annotations

import difflib
import getpass
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from recsys_assets import taxonomy
from recsys_assets.config import Settings
from recsys_assets.warehouse import overrides as sql
from recsys_assets.warehouse.ingest import MAX_ID_CHARS

SOURCE = "override"
CONFIDENCE = 1.0
STORE_NAME = "label_overrides.sqlite"
FILE_STEM = "label_overrides"
FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
GOLD_SPLIT = "override"  # the `split` of exported corrections in a gold file
GOLD_COLUMNS = ("name", "menu", "description", "industry", "split", "restaurant_id", "note")
LOW_CONFIDENCE = 0.5  # review: labels below this confidence
REVIEW_COLUMNS = (
    "rank",
    "restaurant_id",
    "name",
    "menu",
    "description",
    "industry",
    "confidence",
    "source",
    "flagged",
    "offline_industry",
    "offline_confidence",
    "reason",
)
LABEL_OUTPUT = ("industry", "confidence", "source", "flagged", "label_status")  # `recsys label`
_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


class OverrideError(ValueError):
    """An override cannot be recorded or read; the message is one line naming the cause."""


class WarehouseBusy(OverrideError):
    """Another process holds the DuckDB warehouse's write lock (a run is writing it)."""


def industry_code(value: str) -> str:
    """The taxonomy code for `value` (case and spaces forgiven); OverrideError names the codes."""
    code = value.strip().lower()
    if taxonomy.is_valid(code):
        return code
    close = difflib.get_close_matches(code, taxonomy.INDUSTRY_CODES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise OverrideError(
        f"unknown industry {value!r}{hint}: not in the taxonomy; valid codes: "
        f"{', '.join(taxonomy.INDUSTRY_CODES)}"
    )


def restaurant_key(value: str) -> str:
    rid = value.strip()
    if not rid:
        raise OverrideError("empty restaurant id")
    if len(rid) > MAX_ID_CHARS or _ID_FORBIDDEN.search(rid):
        raise OverrideError(
            f"bad restaurant id {rid[:60]!r}: control characters or longer than "
            f"{MAX_ID_CHARS} characters"
        )
    return rid


class OverrideStore:
    """The table `recsys label override` writes: RECSYS_HOME/label_overrides.sqlite."""

    COLUMNS = ("restaurant_id", "industry", "note", "author", "corrected_at")

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / STORE_NAME

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30)) as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS overrides (restaurant_id TEXT PRIMARY KEY, "
                "industry TEXT NOT NULL, note TEXT NOT NULL, author TEXT, "
                "corrected_at TEXT NOT NULL)"
            )
            con.execute(
                "CREATE TABLE IF NOT EXISTS override_log (id INTEGER PRIMARY KEY "
                "AUTOINCREMENT, action TEXT NOT NULL, restaurant_id TEXT NOT NULL, "
                "industry TEXT, note TEXT, author TEXT, at TEXT NOT NULL)"
            )
            with con:  # one transaction: the override and its log line, or neither
                yield con

    def get(self, restaurant_id: str) -> dict[str, str] | None:
        if not self.path.exists():
            return None
        with self._connect() as con:
            row = con.execute(
                f"SELECT {', '.join(self.COLUMNS)} FROM overrides WHERE restaurant_id = ?",
                [restaurant_id],
            ).fetchone()
        return dict(zip(self.COLUMNS, row, strict=True)) if row else None

    def set(self, restaurant_id: str, industry: str, note: str, author: str | None) -> str:
        """Record (or replace) the override; returns its time (ISO, UTC)."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?, ?)",
                [restaurant_id, industry, note, author, at],
            )
            con.execute(
                "INSERT INTO override_log (action, restaurant_id, industry, note, author, "
                "at) VALUES ('set', ?, ?, ?, ?, ?)",
                [restaurant_id, industry, note, author, at],
            )
        return at

    def remove(self, restaurant_id: str, author: str | None) -> dict[str, str] | None:
        """Delete the override; returns what it was (None: there was none)."""
        previous = self.get(restaurant_id)
        if previous is None:
            return None
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as con:
            con.execute("DELETE FROM overrides WHERE restaurant_id = ?", [restaurant_id])
            con.execute(
                "INSERT INTO override_log (action, restaurant_id, industry, note, author, "
                "at) VALUES ('remove', ?, ?, ?, ?, ?)",
                [restaurant_id, previous["industry"], previous["note"], author, at],
            )
        return previous

    def frame(self) -> pd.DataFrame:
        """Every recorded override (text columns; empty when nothing was ever recorded)."""
        if not self.path.exists():
            return pd.DataFrame(columns=list(self.COLUMNS), dtype=object)
        with self._connect() as con:
            rows = con.execute(
                f"SELECT {', '.join(self.COLUMNS)} FROM overrides ORDER BY restaurant_id"
            ).fetchall()
        return pd.DataFrame(rows, columns=list(self.COLUMNS), dtype=object)


def default_author() -> str | None:
    from recsys_assets.config import env_str

    try:
        return env_str("RECSYS_USER") or getpass.getuser()
    except (KeyError, OSError):
        return None


def find_file(data_dir: Path | None) -> Path | None:
    """The overrides file in RECSYS_DATA_DIR, if any; two of them are ambiguous: refused."""
    if data_dir is None or not Path(data_dir).is_dir():
        return None
    found = [Path(data_dir) / f"{FILE_STEM}{s}" for s in FILE_SUFFIXES]
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        raise OverrideError(
            f"several overrides files in {data_dir} "
            f"({', '.join(p.name for p in found)}): keep exactly one"
        )
    return found[0] if found else None


def check(
    con: duckdb.DuckDBPyConnection, settings: Settings, restaurants: str | None = "restaurants"
) -> sql.Checked:
    """Every override (file + command table) checked against the taxonomy and `restaurants`
    (None: not checked); the valid ones and the quarantined rows with their reason."""
    store = OverrideStore(settings.home)
    return sql.check(con, find_file(settings.data_dir), store.frame(), str(store.path), restaurants)


@contextmanager
def reading(settings: Settings) -> Iterator[tuple[duckdb.DuckDBPyConnection, bool]]:
    """An in-memory DuckDB connection with the warehouse attached read-only as `wh` when there is
    one (yields True then). Raises WarehouseBusy when a run holds its write lock."""
    con = duckdb.connect()
    try:
        attached = False
        path = settings.warehouse_path
        if path.exists():
            try:
                con.execute("ATTACH ? AS wh (READ_ONLY)", [str(path)])
                attached = True
            except duckdb.IOException as exc:
                if "lock" in str(exc).lower():
                    raise WarehouseBusy(
                        f"the warehouse {path} is being written by another process "
                        "(a run in progress): try again when it is done"
                    ) from None
                raise OverrideError(f"cannot read the warehouse {path}: {exc}") from None
        yield con, attached
    finally:
        con.close()


def has_table(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
        [catalog, table],
    ).fetchone()
    return bool(row and row[0])


def label_rows(valid: pd.DataFrame) -> pd.DataFrame:
    """The overrides as label rows (the labelers' output columns)."""
    stamps = pd.to_datetime(valid["corrected_at"], utc=True)
    stamps = stamps.fillna(pd.Timestamp.now(tz="UTC"))
    return pd.DataFrame(
        {
            "restaurant_id": valid["restaurant_id"].astype(object).to_numpy(),
            "industry": pd.Series(valid["industry"].to_numpy(), dtype="string"),
            "confidence": pd.Series([CONFIDENCE] * len(valid), dtype="float64"),
            "source": pd.Series([SOURCE] * len(valid), dtype="string"),
            "labeled_at": pd.Series(stamps.to_numpy()).astype("datetime64[us, UTC]"),
            "flagged": pd.Series([False] * len(valid), dtype="bool"),
            "label_status": pd.Series(["ok"] * len(valid), dtype="string"),
        }
    )


def apply(labels: pd.DataFrame, valid: pd.DataFrame) -> pd.DataFrame:
    """`labels` with every overridden restaurant's row replaced by (or added as) its override."""
    kept = labels[~labels["restaurant_id"].astype(str).isin(set(valid["restaurant_id"]))]
    rows = label_rows(valid)[list(labels.columns)] if len(valid) else None
    if rows is None:
        return kept.reset_index(drop=True)
    if not len(kept):
        return rows.reset_index(drop=True)
    return pd.concat([kept, rows], ignore_index=True)


def overridden_mask(ids: pd.Series, valid: pd.DataFrame) -> pd.Series:
    return ids.astype(str).str.strip().isin(set(valid["restaurant_id"]))


def merge_output(
    df: pd.DataFrame, labeled: pd.DataFrame, mask: pd.Series, valid: pd.DataFrame
) -> pd.DataFrame:
    """`recsys label` output in input order: `labeled` holds the rows not overridden (in order,
    input columns + labels), the overridden rows get their override."""
    if not mask.any():
        return labeled
    out = df.copy()
    label_cols = [c for c in LABEL_OUTPUT if c in labeled.columns]  # may replace input columns
    rows = label_rows(valid).set_index("restaurant_id")
    keys = df.loc[mask, "restaurant_id"].astype(str).str.strip()
    for col in label_cols:
        values = pd.Series([None] * len(df), dtype=object)
        values[(~mask).to_numpy()] = labeled[col].to_numpy()
        if col in rows.columns:
            values[mask.to_numpy()] = rows.loc[keys, col].to_numpy()
        out[col] = values.to_numpy()
    out["confidence"] = out["confidence"].astype("float64")
    out["flagged"] = out["flagged"].astype(bool)
    return out


def review_queue(
    candidates: pd.DataFrame, *, low_confidence: float = LOW_CONFIDENCE, limit: int | None = None
) -> pd.DataFrame:
    """The labels most worth a human look, most urgent first (REVIEW_COLUMNS).

    Ranking rule: (1) flagged answers (the model's answer was invalid, or never came), then
    (2) LLM labels the offline lexicon contradicts (it found evidence for another industry), then
    (3) labels with confidence below `low_confidence`; within a tier, lowest confidence first,
    then restaurant_id. Every reason that applies is in `reason`. Overridden restaurants are not
    candidates (see warehouse.overrides.review_candidates).
    """
    from recsys_assets.labeling.offline import OfflineLabeler

    df = candidates.reset_index(drop=True).copy()
    llm = df["source"].isin(["llm", "cascade_llm"]).to_numpy()
    off_ind, off_conf = df["industry"].astype(object).to_numpy(), df["confidence"].to_numpy()
    off_ind, off_conf = off_ind.copy(), off_conf.copy()
    evidence = [False] * len(df)
    rows = [i for i in range(len(df)) if llm[i]]
    if rows:
        preds = OfflineLabeler().predict_many(
            [
                (_text(df.at[i, "name"]), _text(df.at[i, "menu"]), _text(df.at[i, "description"]))
                for i in rows
            ]
        )
        for i, p in zip(rows, preds, strict=True):
            off_ind[i], off_conf[i], evidence[i] = p.industry, p.confidence, bool(p.evidence)
    df["offline_industry"], df["offline_confidence"] = off_ind, off_conf.astype(float)
    tiers, reasons = [], []
    rows_in = zip(
        df["industry"].tolist(),
        df["source"].tolist(),
        df["confidence"].tolist(),
        df["flagged"].tolist(),
        strict=True,
    )
    for i, (industry, source, confidence, flagged) in enumerate(rows_in):
        why, tier = [], 3
        if bool(flagged):
            why.append("flagged: the model gave no valid answer")
            tier = 0
        if llm[i] and evidence[i] and off_ind[i] != industry:
            why.append(f"offline says {off_ind[i]} ({off_conf[i]:.2f}), {source} says {industry}")
            tier = min(tier, 1)
        if float(confidence) < low_confidence:
            why.append(f"low confidence {float(confidence):.2f} < {low_confidence:g}")
            tier = min(tier, 2)
        tiers.append(tier)
        reasons.append("; ".join(why))
    df["tier"], df["reason"] = tiers, reasons
    df = df[df["tier"] < 3].sort_values(["tier", "confidence", "restaurant_id"], kind="stable")
    if limit is not None:
        df = df.head(limit)
    df.insert(0, "rank", range(1, len(df) + 1))
    df["flagged"] = df["flagged"].astype(bool)
    return df[list(REVIEW_COLUMNS)].reset_index(drop=True)


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def gold_frame(valid: pd.DataFrame, texts: pd.DataFrame) -> pd.DataFrame:
    """The overrides in the gold-file format of `recsys label eval` (GOLD_COLUMNS), for the
    restaurants whose text is known; split = GOLD_SPLIT so they are scored as their own group."""
    merged = valid.merge(texts, on="restaurant_id", how="inner")
    merged["split"] = GOLD_SPLIT
    merged["description"] = merged["description"].fillna("")
    merged["note"] = merged["note"].fillna("")
    return merged[list(GOLD_COLUMNS)].sort_values("restaurant_id").reset_index(drop=True)
