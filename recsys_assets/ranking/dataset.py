"""Temporal cold-start ranking dataset, built in DuckDB SQL.

The question the ranker answers: "a restaurant just signed up; which products will it buy in its
first 30 days?" The dataset reproduces that situation for past restaurants without leaking the future:

- A cutoff date splits time. The test cohort signed up on/after the cutoff (with >= 30 days of data
  after sign-up); every feature they get is computed from orders strictly before the cutoff.
- Training queries are earlier cohorts. Each is joined to the latest *monthly snapshot* on/before its
  sign-up date, and the snapshot's statistics only use orders (and sign-ups) before the snapshot, so a
  training restaurant sees exactly what a new restaurant would have seen at that time. Their 30-day
  window ends before the cutoff, so no training relevance comes from after the cutoff either.
- The latest training cohort month(s) are the validation set for early stopping.
- The same code (`token_features.candidate_features`: SQL, and numpy for the menu-token aggregates)
  computes features for training, evaluation and serving (the pyfunc runs it on a snapshot
  exported as Parquet), so there is one definition of each feature.

Features: the registry in `features.py`; definitions in `features.md` (generated from it).
SQL: one file per table in `sql/`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from recsys_assets import taxonomy
from recsys_assets.ranking import sql
from recsys_assets.ranking.token_features import candidate_features
from recsys_assets.threads import in_thread
from recsys_assets.warehouse.tables import (
    industry_product_stats_params,
    industry_product_stats_select,
)

HORIZON_DAYS = 30
HOLDOUT_DAYS = 90
SIZE_ORD = {"small": 0, "medium": 1, "large": 2}

# Tables this module writes (prefix rk_ so they never collide with the pipeline's own tables).
# Snapshot tables in build order: each one's SQL may read the earlier ones' rows of its snapshot.
SNAPSHOT_TABLES = (
    "rk_snap_prod",
    "rk_snap_ind_prod",
    "rk_snap_ind_cat",
    "rk_snap_token",
    "rk_snap_token_prod",
    "rk_snap_basket",
    "rk_snap_token_share",
)
# Tables whose SQL builds every snapshot in one statement ($snapshots); the others run per snapshot.
ALL_SNAPSHOT_TABLES = frozenset(
    {"rk_snap_prod", "rk_snap_ind_prod", "rk_snap_token", "rk_snap_token_prod"}
)
# Built together, for every snapshot, by basket_shares.py (numpy sums over the basket shares).
BASKET_TABLES = ("rk_snap_basket", "rk_snap_token_share")
VOCAB_TABLES = ("rk_vocab_category", "rk_vocab_region", "rk_vocab_industry")
# Copies of the industry x product statistics that older versions kept; rk_snap_ind_prod replaced them.
_RETIRED_TABLES = ("rk_industry_product_stats", "rk_industry_top_products")


@dataclass(frozen=True)
class RankingConfig:
    """Knobs of the dataset; defaults are what the pipeline uses."""

    cutoff: date | None = (
        None  # None: the `cutoff` argument (RECSYS_RANK_CUTOFF), else data end - holdout_days
    )
    holdout_days: int = HOLDOUT_DAYS
    horizon_days: int = HORIZON_DAYS
    # Every step that builds, fits or scores candidates pays per row. Industry top 100 -> 60 cut
    # ~27 % of the rows; industry top 60 -> 50 and token top 10 -> 7 another ~12 % (medium: 77.1 ->
    # 67.0 rows per query in the default world, rk_candidates 1.33M -> 1.16M rows), each for the
    # same model NDCG@10 across the generating worlds (the second: new / old 0.990-1.017, mean
    # 1.006 over 6 worlds x 2 seeds at small, no paired 95 % CI below 1; medium in
    # benchmarks/REPORT.md), although candidate recall drops 1-4 points: products ranked below 50
    # in an industry or 8-10 for a token rarely make a cold-start top 10. The global top 30 stays:
    # cutting it to 10 lowered menu_items, recipe and random in both seeds.
    n_industry_candidates: int = 50
    n_global_candidates: int = 30
    n_token_candidates: int = 7
    min_history_days: int = 60  # first training snapshot = data start + this
    token_min_support: int = 5  # a menu token must be on this many past restaurants' menus
    token_min_pair: int = 2  # token x product pairs seen on fewer restaurants count as unseen
    token_smoothing: float = 10.0  # pseudo-restaurants shrinking P(p | token) toward P(p)
    new_smoothing: float = 5.0  # pseudo-restaurants shrinking first-30-day penetration
    share_smoothing: float = 5.0  # pseudo-restaurants shrinking a menu token's basket share
    # A menu word also counts as the longest known tokens (this many characters or more) it contains.
    token_contain_min_len: int = 2
    valid_months: int = 1  # at least this many latest sign-up months validate
    min_valid_queries: int = 100  # ... and at least this many queries
    valid_fraction: float = 0.15  # ... and at least this share of the training queries


@dataclass
class RankingDataset:
    """What `build_ranking_dataset` wrote, with the counts the asset reports."""

    cutoff: date
    data_start: date
    data_end: date  # exclusive: the day after the newest order
    serving_snapshot: date
    snapshots: list[date]
    relevance_thresholds: list[float]
    config: RankingConfig
    counts: dict[str, int] = field(default_factory=dict)
    candidate_recall: dict[str, float] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    industries: list[str] = field(default_factory=list)  # industry_code = position in this list
    snapshot_hash: str = ""

    def summary(self) -> dict:
        d = asdict(self)
        d["config"] = asdict(self.config)
        for key in ("cutoff", "data_start", "data_end", "serving_snapshot"):
            d[key] = str(d[key])
        d["snapshots"] = [str(s) for s in self.snapshots]
        if d["config"]["cutoff"] is not None:
            d["config"]["cutoff"] = str(d["config"]["cutoff"])
        return d

    @classmethod
    def from_summary(cls, d: dict) -> RankingDataset:
        """The inverse of `summary()`: later pipeline steps (other processes) rebuild the object."""
        cfg = dict(d["config"])
        cfg["cutoff"] = date.fromisoformat(cfg["cutoff"]) if cfg.get("cutoff") else None
        return cls(
            **{
                **d,
                "config": RankingConfig(**cfg),
                **{
                    k: date.fromisoformat(d[k])
                    for k in ("cutoff", "data_start", "data_end", "serving_snapshot")
                },
                "snapshots": [date.fromisoformat(s) for s in d["snapshots"]],
            }
        )


SUMMARY_TABLE = "rk_dataset_summary"


def save_dataset_summary(con: duckdb.DuckDBPyConnection, dataset: RankingDataset) -> None:
    """Persist what `build_ranking_dataset` returned next to the rk_* tables it describes."""
    con.execute(f"CREATE OR REPLACE TABLE {SUMMARY_TABLE} (summary JSON)")
    con.execute(f"INSERT INTO {SUMMARY_TABLE} VALUES (?)", [json.dumps(dataset.summary())])


def load_dataset_summary(con: duckdb.DuckDBPyConnection) -> RankingDataset:
    rows = con.execute(f"SELECT summary FROM {SUMMARY_TABLE}").fetchall()
    if not rows:
        raise LookupError(
            "no ranking dataset has been built yet: materialize ranking_dataset first"
        )
    summary = json.loads(rows[0][0])
    if not {"relevance_thresholds", "industries"} <= summary.keys():  # older rk_* tables
        raise LookupError(
            "the ranking dataset was built by an older version of recsys-assets: "
            "materialize ranking_dataset again"
        )
    return RankingDataset.from_summary(summary)


_TOKEN_SPLIT = re.compile(r"[|\n\r\t;,/·•+]")
# Prices ("16,500원", "4500") and anything that is not a letter, digit or space (emoji, punctuation).
_PRICE = re.compile(r"\d[\d,.]*\s*(원|won|krw)?", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w\s]", re.UNICODE)


def menu_tokens(menu: str | None) -> list[str]:
    """Menu items as association tokens, plus the words of multi-word items.

    '|'-separated items, prices and symbols stripped, spaces collapsed, lower-cased, de-duplicated;
    "불고기 정식" also yields "불고기" and "정식" so a spelling or wording variant still shares a token.
    One Python definition serves training and serving so a token means the same in both.
    """
    if not menu:
        return []
    seen: dict[str, None] = {}
    for raw in _TOKEN_SPLIT.split(str(menu)):
        item = " ".join(_NON_WORD.sub(" ", _PRICE.sub(" ", raw)).split()).lower()
        item = item.replace("_", " ").strip()
        if not item:
            continue
        seen.setdefault(item, None)
        words = item.split()
        if len(words) > 1:
            for w in words:
                if len(w) > 1:
                    seen.setdefault(w, None)
    return list(seen)


def resolve_cutoff(
    con: duckdb.DuckDBPyConnection,
    cutoff: date | str | None = None,
    holdout_days: int = HOLDOUT_DAYS,
) -> date:
    """Explicit cutoff (settings.ranking.cutoff: RECSYS_RANK_CUTOFF), else the start of the
    data's last `holdout_days`."""
    if isinstance(cutoff, str):
        return date.fromisoformat(cutoff.strip()[:10])
    if isinstance(cutoff, datetime):
        return cutoff.date()
    if isinstance(cutoff, date):
        return cutoff
    _, end = data_span(con)
    return end - timedelta(days=holdout_days)


def data_span(con: duckdb.DuckDBPyConnection) -> tuple[date, date]:
    """(first order day, day after the last order)."""
    lo, hi = con.execute("SELECT min(ordered_at), max(ordered_at) FROM orders").fetchall()[0]
    if lo is None:
        raise ValueError("orders is empty: nothing to build a ranking dataset from")
    return lo.date(), hi.date() + timedelta(days=1)


def monthly_snapshots(first: date, cutoff: date) -> list[date]:
    """First-of-month dates from `first` (rounded up) to before `cutoff`, then the cutoff itself."""
    snaps = []
    d = date(first.year, first.month, 1)
    if d < first:
        d = date(d.year + (d.month // 12), d.month % 12 + 1, 1)
    while d < cutoff:
        snaps.append(d)
        d = date(d.year + (d.month // 12), d.month % 12 + 1, 1)
    snaps.append(cutoff)
    return snaps


# --------------------------------------------------------------------------------------------
# Tables. Each one's SQL is ranking/sql/<table without rk_>.sql; the functions only order them.
# --------------------------------------------------------------------------------------------


def _build_base_tables(
    con: duckdb.DuckDBPyConnection, cfg: RankingConfig, industries: Sequence[str]
) -> None:
    """Tables every snapshot reads: first purchases, first windows, menu tokens (tokenized in
    Python on a second thread while DuckDB builds the first two), vocabularies."""
    with _in_background(con, _build_menu_tokens):
        sql.run(con, "first_purchase")
        sql.run(con, "first_window", {"horizon_days": cfg.horizon_days})
    for table in VOCAB_TABLES:
        sql.run(con, table.removeprefix("rk_"), {"industries": list(industries)})
    for table in (*SNAPSHOT_TABLES, *_RETIRED_TABLES):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _build_menu_tokens(con: duckdb.DuckDBPyConnection) -> None:
    """rk_menu_tokens, tokenized in Python by `menu_tokens` (the same code serving uses)."""
    rows = con.execute("SELECT restaurant_id, menu FROM restaurants").fetchall()
    tok = pd.DataFrame(
        [(rid, t) for rid, menu in rows for t in menu_tokens(menu)],
        columns=["restaurant_id", "token"],
    ).astype({"restaurant_id": object, "token": object})
    con.register("rk_menu_tokens_df", tok)
    try:
        sql.run(con, "menu_tokens")
    finally:
        con.unregister("rk_menu_tokens_df")


def _snapshot_params(snapshots: Sequence[date], cfg: RankingConfig) -> dict:
    """Every knob a snapshot table's SQL may use (`sql.run` passes each file what it references):
    `snapshots` for the tables built for all snapshots at once, `snapshot` is set per snapshot."""
    return {
        "snapshots": list(snapshots),
        "horizon_days": cfg.horizon_days,
        "new_smoothing": cfg.new_smoothing,
        "token_min_support": cfg.token_min_support,
        "token_min_pair": cfg.token_min_pair,
        "token_smoothing": cfg.token_smoothing,
        **industry_product_stats_params([datetime(s.year, s.month, s.day) for s in snapshots]),
    }


def _build_snapshots(
    con: duckdb.DuckDBPyConnection, snapshots: Sequence[date], cfg: RankingConfig
) -> None:
    """All statistics as of each snapshot `s`: only orders before `s` and restaurants signed up
    before it.

    One SQL file per table (each may read the tables before it in SNAPSHOT_TABLES). The files of
    ALL_SNAPSHOT_TABLES compute every snapshot in one statement (each event counted from the first
    snapshot it belongs to, then cumulative sums), BASKET_TABLES are summed in numpy
    (basket_shares.py); the others run once per snapshot, the first creating the table (column
    types from the SELECT), the later ones appending. The basket tables only read rk_snap_token of
    the snapshot tables, so they are built on a second thread (their numpy sums run while DuckDB
    builds the other tables) once it is there.
    """
    from recsys_assets.ranking.basket_shares import build_basket_tables

    params = _snapshot_params(snapshots, cfg)
    fragments = {
        "industry_product_stats": industry_product_stats_select(),
        "snapshot_buckets": sql.load("snapshot_buckets"),
    }
    first = "rk_snap_token"
    _build_snapshot_table(con, first, snapshots, params, fragments)
    with _in_background(con, lambda cur: build_basket_tables(cur, params, fragments)):
        for table in SNAPSHOT_TABLES:
            if table not in (first, *BASKET_TABLES):
                _build_snapshot_table(con, table, snapshots, params, fragments)


def _build_snapshot_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    snapshots: Sequence[date],
    params: dict,
    fragments: dict[str, str],
) -> None:
    """One table of SNAPSHOT_TABLES but the basket tables, for every snapshot."""
    name = table.removeprefix("rk_")
    if table in ALL_SNAPSHOT_TABLES:
        sql.run(con, name, params, fragments, prefix=f"CREATE TABLE {table} AS")
        return
    for i, s in enumerate(snapshots):
        verb = f"INSERT INTO {table} BY NAME" if i else f"CREATE TABLE {table} AS"
        sql.run(con, name, {**params, "snapshot": s}, fragments, prefix=verb)


def candidate_params(cfg: RankingConfig) -> dict:
    return {
        "n_ind": cfg.n_industry_candidates,
        "n_glob": cfg.n_global_candidates,
        "n_tok": cfg.n_token_candidates,
        "a": cfg.token_smoothing,
        "contain_min_len": cfg.token_contain_min_len,
        "share_a": cfg.share_smoothing,
    }


def industry_coder(
    industries: Sequence[str], unknown: str = taxonomy.OTHER
) -> Callable[[str | None], int]:
    """name -> industry_code for a model trained with `industries` (the list stored with it).

    By name, never by today's taxonomy position, so inserting an industry cannot shift the codes a
    registered model receives. Any industry the model never saw gets `unknown`'s code, as an
    unrecognised label did in training.
    """
    codes = {name: i for i, name in enumerate(industries)}
    fallback = codes[unknown]

    def code(name: str | None) -> int:
        return fallback if name is None else codes.get(name, fallback)

    return code


def _build_queries(
    con: duckdb.DuckDBPyConnection,
    cutoff: date,
    data_end: date,
    snapshots: list[date],
    cfg: RankingConfig,
) -> None:
    """rk_queries (sql/queries.sql), then the latest training sign-ups become the validation set."""
    sql.run(
        con,
        "queries",
        {
            "cutoff": cutoff,
            "data_end": data_end,
            "horizon_days": cfg.horizon_days,
            "train_snapshots": [s for s in snapshots if s < cutoff],
            "other": taxonomy.OTHER,
        },
        {"latest_labels": sql.load("latest_labels")},
    )
    _assign_validation(con, cfg)


def _assign_validation(con: duckdb.DuckDBPyConnection, cfg: RankingConfig) -> None:
    """Validation = the latest training sign-up month(s), widened month by month until it holds
    enough queries for a stable early-stopping signal (a 4-day sliver of a month is not enough)."""
    months = con.execute(
        "SELECT date_trunc('month', signup_date) AS m, count(*) FROM rk_queries WHERE split = 'train' "
        "GROUP BY m ORDER BY m DESC"
    ).fetchall()
    total = sum(n for _, n in months)
    want = max(cfg.min_valid_queries, cfg.valid_fraction * total)
    acc, start = 0, None
    for i, (m, n) in enumerate(months[:-1]):  # always leave at least one month to train on
        acc += n
        start = m
        if i + 1 >= cfg.valid_months and acc >= want:
            break
    if start is not None:
        con.execute(
            "UPDATE rk_queries SET split = 'valid' WHERE split = 'train' AND signup_date >= $m",
            {"m": start},
        )


def _relevance_thresholds(con: duckdb.DuckDBPyConnection) -> list[float]:
    """Quartiles of positive first-30-day quantities among training queries (no test data)."""
    row = sql.run(con, "relevance_thresholds").fetchall()[0][0]
    return [float(x) for x in row] if row else [1.0, 2.0, 4.0]


def _build_truth(con: duckdb.DuckDBPyConnection, thresholds: list[float]) -> None:
    t1, t2, t3 = (float(x) for x in thresholds)
    sql.run(con, "truth", {"threshold_1": t1, "threshold_2": t2, "threshold_3": t3})


# Queries per block of rk_candidates (in snapshot order, so a block holds one or two snapshots'
# queries: the token tables of token_features.py grow with the snapshots). Blocks bound the
# memory; each costs a few fixed statements, which one block per snapshot paid 14 times at medium.
CANDIDATE_BLOCK_QUERIES = 10_000
# Blocks built at once, each on its own thread and cursor: one block's numpy token aggregates
# (single-threaded) run while DuckDB works on the other's statements, so both cores stay busy.
CANDIDATE_WORKERS = 2
_QUERY_BLOCK = "rk_query_block"  # a temporary table (each cursor its own): a block of queries
_NEW = "rk_candidates_new"  # rk_candidates while it is built


def _build_candidates(con: duckdb.DuckDBPyConnection, cfg: RankingConfig) -> None:
    """rk_candidates, built block by block (at most CANDIDATE_BLOCK_QUERIES queries each, in
    snapshot order, as many blocks as a multiple of CANDIDATE_WORKERS), CANDIDATE_WORKERS blocks
    at a time: an empty block creates rk_candidates_new (the column types), every block appends
    to it, then one transaction puts it in rk_candidates' place; a failure drops it and leaves
    rk_candidates as it was. Each block commits on its own: inside one transaction DuckDB keeps
    every block's work tables and arrays until the commit (+1.3 GiB at the large scale). The rows
    are those of one statement over all of rk_queries."""
    from recsys_assets.warehouse.tables import transaction

    n = con.execute("SELECT count(*) FROM rk_queries").fetchall()[0][0]
    n_blocks = -(-max(n, 1) // CANDIDATE_BLOCK_QUERIES)
    n_blocks = -(-n_blocks // CANDIDATE_WORKERS) * CANDIDATE_WORKERS
    firsts = con.execute(  # each block's first query: a block runs up to the next one's
        "SELECT snapshot, restaurant_id FROM (SELECT snapshot, restaurant_id, row_number() OVER "
        "(ORDER BY snapshot, restaurant_id) - 1 AS i FROM rk_queries) WHERE i % $n = 0 ORDER BY i",
        {"n": max(-(-n // n_blocks), 1)},
    ).fetchall()
    ends = [*firsts[1:], (None, None)]
    blocks = [(*first, *end) for first, end in zip(firsts, ends, strict=True)]
    try:
        _candidate_block(con, cfg, None, f"CREATE OR REPLACE TABLE {_NEW} AS")
        _in_threads(con, blocks, lambda cur, b: _candidate_block(cur, cfg, b))
        with transaction(con):
            con.execute("DROP TABLE IF EXISTS rk_candidates")
            con.execute(f"ALTER TABLE {_NEW} RENAME TO rk_candidates")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_NEW}")


# The queries of a block: from its first (snapshot, restaurant_id) up to the next block's first.
_BLOCK_QUERIES = """
SELECT * FROM rk_queries
WHERE (snapshot > CAST($s0 AS DATE) OR (snapshot = CAST($s0 AS DATE) AND restaurant_id >= $r0))
  AND ($s1 IS NULL OR snapshot < CAST($s1 AS DATE)
       OR (snapshot = CAST($s1 AS DATE) AND restaurant_id < $r1))
"""


def _candidate_block(
    con: duckdb.DuckDBPyConnection,
    cfg: RankingConfig,
    block: tuple | None,
    verb: str = f"INSERT INTO {_NEW} BY NAME",
) -> None:
    """The rows of one block's queries into rk_candidates_new: `block` = (snapshot, restaurant_id)
    of its first query and of the next block's first (None, None for the last); None: no query."""
    if block is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_QUERY_BLOCK} AS FROM rk_queries LIMIT 0")
    else:
        s0, r0, s1, r1 = block
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_QUERY_BLOCK} AS {_BLOCK_QUERIES}",
            {"s0": s0, "r0": r0, "s1": s1, "r1": r1},
        )
    try:
        with candidate_features(con, candidate_params(cfg), _QUERY_BLOCK) as features:
            fragments = {"candidate_features": features, "queries": _QUERY_BLOCK}
            con.execute(f"{verb}\n{sql.load('candidates', fragments)}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{_QUERY_BLOCK}")


@contextmanager
def _in_background(
    con: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], None]
) -> Iterator[None]:
    """`work(cursor)` on a second thread (its own cursor on the same database) while the block
    runs: numpy and Python work there release the GIL to DuckDB, and DuckDB work to numpy. Its
    failure is raised after the block; the block's own failure first waits for it to end. The
    cursor sees committed tables only, so `con` must not be inside a transaction."""
    with con.cursor() as cur:
        _copy_settings(con, cur)
        with in_thread("rk-dataset", work, cur):
            yield


def _copy_settings(con: duckdb.DuckDBPyConnection, cur: duckdb.DuckDBPyConnection) -> None:
    """A cursor starts with default settings: it gets the connection's progress-bar setting."""
    on = con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]
    cur.execute(f"SET enable_progress_bar = {'true' if on else 'false'}")


def _in_threads(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[tuple],
    work: Callable[[duckdb.DuckDBPyConnection, tuple], None],
) -> None:
    """`work(cursor, item)` for every item, on CANDIDATE_WORKERS threads with a cursor each (its
    own temporary tables, the same database). The first failure stops the items not yet started
    and is raised once every started one has finished."""
    from concurrent.futures import ThreadPoolExecutor

    pending = iter(items)
    lock, failed = threading.Lock(), threading.Event()

    def worker(cur: duckdb.DuckDBPyConnection) -> None:
        while not failed.is_set():
            with lock:
                item = next(pending, None)
            if item is None:
                return
            try:
                work(cur, item)
            except BaseException:
                failed.set()
                raise

    cursors = [con.cursor() for _ in range(CANDIDATE_WORKERS)]
    for cur in cursors:
        _copy_settings(con, cur)
    try:
        with ThreadPoolExecutor(CANDIDATE_WORKERS, thread_name_prefix="rk-candidates") as pool:
            futures = [pool.submit(worker, cur) for cur in cursors]
    finally:
        for cur in cursors:
            cur.close()
    for future in futures:
        future.result()


def _dataset_counts(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], dict[str, float]]:
    """Queries, queries with positives and candidate rows per split; candidate recall per split."""
    counts: dict[str, int] = {}
    for split, n in con.execute("SELECT split, count(*) FROM rk_queries GROUP BY split").fetchall():
        counts[f"{split}_queries"] = n
    for split, n in con.execute(
        "SELECT split, count(DISTINCT restaurant_id) FROM rk_truth GROUP BY split"
    ).fetchall():
        counts[f"{split}_queries_with_positives"] = n
    for split, n in con.execute(
        "SELECT split, count(*) FROM rk_candidates GROUP BY split"
    ).fetchall():
        counts[f"{split}_candidate_rows"] = n
    # A query can have first-30-day purchases none of which made its candidate list: it counts
    # as "with positives" but not here, and the ranker cannot learn from it.
    for split, n in con.execute(
        "SELECT split, count(DISTINCT restaurant_id) FROM rk_candidates WHERE relevance > 0 "
        "GROUP BY split"
    ).fetchall():
        counts[f"{split}_queries_with_positive_candidates"] = n
    recall = {
        split: covered / total if total else float("nan")
        for split, covered, total in sql.run(con, "candidate_recall").fetchall()
    }
    return counts, recall


def build_ranking_dataset(
    con: duckdb.DuckDBPyConnection,
    cutoff: date | str | None = None,
    config: RankingConfig | None = None,
    industries: Sequence[str] | None = None,
) -> RankingDataset:
    """Build the temporal cold-start dataset and serving snapshot tables in DuckDB.

    Reads restaurants, products, orders, restaurant_industry. Writes (replacing):
    rk_queries (restaurant_id, split, snapshot, ...), rk_truth (restaurant_id, product_id, quantity,
    relevance: every first-30-day purchase), rk_candidates (candidates + features + relevance +
    split), the rk_snap_* snapshot tables (training snapshots, the cutoff, and the serving
    snapshot = data end), and rk_vocab_*. Returns counts and candidate recall@N per split.
    `industries` (default: the taxonomy's codes, in order) defines industry_code.
    """
    cfg = config or RankingConfig()
    industries = list(taxonomy.INDUSTRY_CODES if industries is None else industries)
    if taxonomy.OTHER not in industries or len(set(industries)) != len(industries):
        raise ValueError(
            f"industries must be distinct and include {taxonomy.OTHER!r}: {industries}"
        )
    start, end = data_span(con)
    cut = resolve_cutoff(con, cutoff if cutoff is not None else cfg.cutoff, cfg.holdout_days)
    if not (start < cut < end):
        raise ValueError(f"cutoff {cut} is outside the data span {start}..{end}")
    snapshots = monthly_snapshots(start + timedelta(days=cfg.min_history_days), cut)
    serving = end
    _build_base_tables(con, cfg, industries)
    _build_snapshots(con, [*snapshots, serving], cfg)
    _build_queries(con, cut, end, snapshots, cfg)
    thresholds = _relevance_thresholds(con)
    _build_truth(con, thresholds)
    _build_candidates(con, cfg)
    counts, recall = _dataset_counts(con)
    categories = [
        r[0] for r in con.execute("SELECT category FROM rk_vocab_category ORDER BY code").fetchall()
    ]
    regions = [
        r[0] for r in con.execute("SELECT region FROM rk_vocab_region ORDER BY code").fetchall()
    ]
    industries = [
        r[0] for r in con.execute("SELECT industry FROM rk_vocab_industry ORDER BY code").fetchall()
    ]
    return RankingDataset(
        cutoff=cut,
        data_start=start,
        data_end=end,
        serving_snapshot=serving,
        snapshots=snapshots,
        relevance_thresholds=thresholds,
        config=cfg,
        counts={"snapshots": len(snapshots), **counts},
        candidate_recall=recall,
        categories=categories,
        regions=regions,
        industries=industries,
        snapshot_hash=input_snapshot_hash(con),
    )


# Columns that change on every run although the data does not (when a label was written): a hash
# over them would make every rebuild look like new data and register an identical model again.
VOLATILE_COLUMNS = {"restaurant_industry": ("labeled_at",)}


def input_snapshot_hash(con: duckdb.DuckDBPyConnection) -> str:
    """A content hash of the four input tables, so a run records exactly which data it saw.

    Volatile bookkeeping columns (`VOLATILE_COLUMNS`) are left out: the same data labeled again
    hashes the same.
    """
    import hashlib

    h = hashlib.sha256()
    for table in ("restaurants", "products", "orders", "restaurant_industry"):
        volatile = VOLATILE_COLUMNS.get(table, ())
        cols = ", ".join(volatile)
        rows = f"(SELECT * EXCLUDE ({cols}) FROM {table})" if volatile else table
        # Order-insensitive: the sum of row hashes (HUGEINT, so it cannot overflow).
        n, total = con.execute(
            f"SELECT count(*), coalesce(sum(CAST(hash(t) AS HUGEINT)), 0) FROM {rows} t"
        ).fetchall()[0]
        h.update(f"{table}:{n}:{total};".encode())
    return h.hexdigest()[:16]


def split_digest(con: duckdb.DuckDBPyConnection, split: str) -> tuple[int, str]:
    """(rows, content digest) of one split of rk_candidates: what MLflow records as the run's input.

    Order-insensitive and computed in DuckDB (one scan), so it costs the same at every scale and
    never loads the split into memory; equal digests mean the model saw the same rows.
    """
    import hashlib

    n, total = con.execute(
        "SELECT count(*), coalesce(sum(CAST(hash(t) AS HUGEINT)), 0) FROM rk_candidates t "
        "WHERE split = $s",
        {"s": split},
    ).fetchall()[0]
    return int(n), hashlib.sha256(f"rk_candidates:{split}:{n}:{total}".encode()).hexdigest()[:16]


def load_split(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    """Candidate rows of one split, sorted by query (LightGBM needs each query contiguous)."""
    return con.execute(
        "SELECT * FROM rk_candidates WHERE split = $s ORDER BY restaurant_id, product_id",
        {"s": split},
    ).df()


def load_truth(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    return con.execute(
        "SELECT restaurant_id, product_id, quantity, relevance FROM rk_truth WHERE split = $s",
        {"s": split},
    ).df()


def load_queries(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    return con.execute(
        "SELECT * FROM rk_queries WHERE split = $s ORDER BY restaurant_id", {"s": split}
    ).df()
