"""Temporal cold-start ranking dataset, built in DuckDB SQL.

The question the ranker answers: "a restaurant just signed up; which products will it buy in its
first 30 days?" The dataset reproduces that situation for past restaurants without leaking the future:

- A cutoff date splits time. The test cohort signed up on/after the cutoff (with >= 30 days of data
  after sign-up); every feature they get is computed from orders strictly before the cutoff.
- Training queries are earlier cohorts. Each is joined to the latest *monthly snapshot* on/before its
  sign-up date, and the snapshot's statistics only use orders (and sign-ups) before the snapshot, so a
  training restaurant sees exactly what a new restaurant would have seen at that time. Their 30-day
  window ends before the cutoff, so no training label comes from after the cutoff either.
- The latest training cohort month(s) are the validation set for early stopping.
- The same SQL (`candidate_feature_sql`) computes features for training, evaluation and serving
  (the pyfunc runs it on a snapshot exported as Parquet), so there is one definition of each feature.

Feature definitions: see `features.md` next to this file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from recsys_assets.taxonomy import INDUSTRY_CODES, OTHER
from recsys_assets.warehouse.tables import build_industry_product_stats

HORIZON_DAYS = 30
HOLDOUT_DAYS = 90
SIZE_ORD = {"small": 0, "medium": 1, "large": 2}

# Feature columns, in the order the booster sees them. Categorical ones are integer codes.
FEATURES: tuple[str, ...] = (
    "ind_penetration",
    "ind_smoothed_penetration",
    "ind_lift",
    "ind_recency_score",
    "ind_qty_per_restaurant",
    "ind_rank",
    "ind_new_penetration",
    "ind_new_qty",
    "ind_cat_affinity",
    "global_penetration",
    "global_rank",
    "global_trend",
    "global_new_penetration",
    "category_code",
    "log_unit_price",
    "token_lift_max",
    "token_log_lift_mean",
    "n_known_tokens",
    "token_pen_max",
    "token_qty_max",
    "token_qty_mean",
    "label_confidence",
    "industry_code",
    "region_code",
    "size_ord",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("category_code", "industry_code", "region_code")

# Tables this module writes (prefix rk_ so they never collide with the pipeline's own tables).
SNAPSHOT_TABLES = ("rk_snap_ind_prod", "rk_snap_ind_cat", "rk_snap_prod", "rk_snap_token", "rk_snap_token_prod")
VOCAB_TABLES = ("rk_vocab_category", "rk_vocab_region")


@dataclass(frozen=True)
class RankingConfig:
    """Knobs of the dataset; defaults are what the pipeline uses."""

    cutoff: date | None = None  # None: RECSYS_RANK_CUTOFF, else data end - holdout_days
    holdout_days: int = HOLDOUT_DAYS
    horizon_days: int = HORIZON_DAYS
    n_industry_candidates: int = 100
    n_global_candidates: int = 30
    n_token_candidates: int = 10
    min_history_days: int = 60  # first training snapshot = data start + this
    token_min_support: int = 5  # a menu token must be on this many past restaurants' menus
    token_min_pair: int = 2  # token x product pairs seen on fewer restaurants count as unseen
    token_smoothing: float = 10.0  # pseudo-restaurants shrinking P(p | token) toward P(p)
    new_smoothing: float = 5.0  # pseudo-restaurants shrinking first-30-day penetration
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
    label_thresholds: list[float]
    config: RankingConfig
    counts: dict[str, int] = field(default_factory=dict)
    candidate_recall: dict[str, float] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
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
            **{**d, "config": RankingConfig(**cfg),
               **{k: date.fromisoformat(d[k]) for k in ("cutoff", "data_start", "data_end", "serving_snapshot")},
               "snapshots": [date.fromisoformat(s) for s in d["snapshots"]]}
        )


SUMMARY_TABLE = "rk_dataset_summary"


def save_dataset_summary(con: duckdb.DuckDBPyConnection, dataset: RankingDataset) -> None:
    """Persist what `build_ranking_dataset` returned next to the rk_* tables it describes."""
    con.execute(f"CREATE OR REPLACE TABLE {SUMMARY_TABLE} (summary JSON)")
    con.execute(f"INSERT INTO {SUMMARY_TABLE} VALUES (?)", [json.dumps(dataset.summary())])


def load_dataset_summary(con: duckdb.DuckDBPyConnection) -> RankingDataset:
    rows = con.execute(f"SELECT summary FROM {SUMMARY_TABLE}").fetchall()
    if not rows:
        raise LookupError("no ranking dataset has been built yet: materialize ranking_dataset first")
    return RankingDataset.from_summary(json.loads(rows[0][0]))


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


def resolve_cutoff(con: duckdb.DuckDBPyConnection, cutoff: date | str | None = None,
                   holdout_days: int = HOLDOUT_DAYS) -> date:
    """Explicit cutoff, else RECSYS_RANK_CUTOFF, else the start of the data's last `holdout_days`."""
    if cutoff is None:
        cutoff = os.environ.get("RECSYS_RANK_CUTOFF") or None
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
# Base tables
# --------------------------------------------------------------------------------------------


def _build_base_tables(con: duckdb.DuckDBPyConnection, cfg: RankingConfig) -> None:
    con.execute("""
        CREATE OR REPLACE TABLE rk_first_purchase AS
        SELECT restaurant_id, product_id, min(ordered_at) AS first_at
        FROM orders GROUP BY restaurant_id, product_id
    """)
    # First-30-day purchases of every restaurant. Used only for restaurants whose window has ended
    # before the snapshot that reads it (signup + horizon <= snapshot), or as labels.
    con.execute("""
        CREATE OR REPLACE TABLE rk_first_window AS
        SELECT o.restaurant_id, o.product_id, sum(o.quantity) AS quantity
        FROM orders o JOIN restaurants r USING (restaurant_id)
        WHERE o.ordered_at >= CAST(r.signup_date AS TIMESTAMP)
          AND o.ordered_at < CAST(r.signup_date AS TIMESTAMP) + to_days(CAST($h AS INTEGER))
        GROUP BY o.restaurant_id, o.product_id
    """, {"h": cfg.horizon_days})
    rows = con.execute("SELECT restaurant_id, menu FROM restaurants").fetchall()
    tok = pd.DataFrame(
        [(rid, t) for rid, menu in rows for t in menu_tokens(menu)],
        columns=["restaurant_id", "token"],
    ).astype({"restaurant_id": object, "token": object})
    con.register("rk_tok_df", tok)
    con.execute("CREATE OR REPLACE TABLE rk_menu_tokens AS SELECT DISTINCT restaurant_id, token FROM rk_tok_df")
    con.unregister("rk_tok_df")
    con.execute("""
        CREATE OR REPLACE TABLE rk_vocab_category AS
        SELECT category, CAST(row_number() OVER (ORDER BY category) - 1 AS INTEGER) AS code
        FROM (SELECT DISTINCT category FROM products WHERE category IS NOT NULL)
    """)
    con.execute("""
        CREATE OR REPLACE TABLE rk_vocab_region AS
        SELECT region, CAST(row_number() OVER (ORDER BY region) - 1 AS INTEGER) AS code
        FROM (SELECT DISTINCT region FROM restaurants WHERE region IS NOT NULL AND region <> '')
    """)
    for t in SNAPSHOT_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {t}")


def _build_snapshot(con: duckdb.DuckDBPyConnection, s: date, cfg: RankingConfig) -> None:
    """All statistics as of snapshot `s`: only orders before `s` and restaurants signed up before it."""
    build_industry_product_stats(con, as_of=datetime(s.year, s.month, s.day), table="rk_tmp_stats")
    p = {"s": s, "h": cfg.horizon_days}
    # Product-level (global) statistics.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE rk_tmp_prod AS
        WITH base AS (SELECT restaurant_id FROM restaurants WHERE signup_date < CAST($s AS DATE)),
        n AS (SELECT greatest(count(*), 1) AS n FROM base),
        buyers AS (
            SELECT fp.product_id, count(*) AS b
            FROM rk_first_purchase fp JOIN base USING (restaurant_id)
            WHERE fp.first_at < CAST($s AS TIMESTAMP) GROUP BY fp.product_id
        ),
        q AS (
            SELECT product_id,
                   sum(quantity) FILTER (WHERE ordered_at >= CAST($s AS TIMESTAMP) - INTERVAL 30 DAY) AS q30,
                   sum(quantity) AS q90
            FROM orders
            WHERE ordered_at < CAST($s AS TIMESTAMP)
              AND ordered_at >= CAST($s AS TIMESTAMP) - INTERVAL 90 DAY
            GROUP BY product_id
        ),
        newbase AS (
            SELECT restaurant_id FROM restaurants
            WHERE signup_date + to_days(CAST($h AS INTEGER)) <= CAST($s AS DATE)
        ),
        nn AS (SELECT greatest(count(*), 1) AS n FROM newbase),
        newp AS (
            SELECT fw.product_id, count(*) AS b
            FROM rk_first_window fw JOIN newbase USING (restaurant_id) GROUP BY fw.product_id
        )
        SELECT
            CAST($s AS DATE) AS snapshot,
            pr.product_id,
            pr.category,
            coalesce(buyers.b, 0) / n.n AS global_penetration,
            (coalesce(q.q30, 0) + 1.0) / (coalesce(q.q90, 0) / 3.0 + 1.0) AS global_trend,
            coalesce(newp.b, 0) / nn.n AS global_new_penetration,
            ln(1 + greatest(coalesce(pr.unit_price, 0), 0)) AS log_unit_price
        FROM products pr
        CROSS JOIN n CROSS JOIN nn
        LEFT JOIN buyers USING (product_id)
        LEFT JOIN q USING (product_id)
        LEFT JOIN newp USING (product_id)
    """, p)
    con.execute("""
        CREATE TABLE IF NOT EXISTS rk_snap_prod (
            snapshot DATE, product_id VARCHAR, category VARCHAR, global_penetration DOUBLE,
            global_trend DOUBLE, global_new_penetration DOUBLE, log_unit_price DOUBLE,
            global_rank INTEGER, category_code INTEGER)
    """)
    con.execute("""
        INSERT INTO rk_snap_prod
        SELECT t.snapshot, t.product_id, t.category, t.global_penetration, t.global_trend,
               t.global_new_penetration, t.log_unit_price,
               CAST(row_number() OVER (ORDER BY t.global_penetration DESC, t.global_new_penetration DESC,
                                      t.product_id) AS INTEGER),
               vc.code
        FROM rk_tmp_prod t LEFT JOIN rk_vocab_category vc USING (category)
    """)
    # Industry x product statistics (the warehouse definition, as of s) + first-30-day behaviour.
    con.execute("""
        CREATE TABLE IF NOT EXISTS rk_snap_ind_prod (
            snapshot DATE, industry VARCHAR, product_id VARCHAR, ind_penetration DOUBLE,
            ind_smoothed_penetration DOUBLE, ind_lift DOUBLE, ind_recency_score DOUBLE,
            ind_qty_per_restaurant DOUBLE, ind_rank INTEGER, ind_new_penetration DOUBLE,
            ind_new_qty DOUBLE)
    """)
    con.execute("""
        INSERT INTO rk_snap_ind_prod
        WITH newbase AS (
            SELECT r.restaurant_id, ri.industry FROM restaurants r
            JOIN restaurant_industry ri USING (restaurant_id)
            WHERE r.signup_date + to_days(CAST($h AS INTEGER)) <= CAST($s AS DATE)
        ),
        nsize AS (SELECT industry, count(*) AS n FROM newbase GROUP BY industry),
        npair AS (
            SELECT nb.industry, fw.product_id, count(*) AS b, sum(fw.quantity) AS qty
            FROM rk_first_window fw JOIN newbase nb USING (restaurant_id)
            GROUP BY nb.industry, fw.product_id
        ),
        gp AS (SELECT product_id, global_new_penetration FROM rk_tmp_prod)
        SELECT
            CAST($s AS DATE), st.industry, st.product_id, st.penetration, st.smoothed_penetration,
            st.lift, st.recency_score, st.quantity / st.industry_restaurants,
            CAST(row_number() OVER (
                PARTITION BY st.industry
                ORDER BY st.smoothed_penetration DESC, st.recency_score DESC, st.quantity DESC, st.product_id
            ) AS INTEGER),
            (coalesce(np.b, 0) + $k * coalesce(gp.global_new_penetration, 0)) / (coalesce(ns.n, 0) + $k),
            coalesce(np.qty, 0) / greatest(coalesce(ns.n, 0), 1)
        FROM rk_tmp_stats st
        LEFT JOIN nsize ns USING (industry)
        LEFT JOIN npair np ON np.industry = st.industry AND np.product_id = st.product_id
        LEFT JOIN gp ON gp.product_id = st.product_id
    """, {**p, "k": cfg.new_smoothing})
    # Industry x category affinity: the industry's share of penetration mass in a category over the
    # global share (1 = as much as everyone else, >1 = this industry leans on the category).
    con.execute("""
        CREATE TABLE IF NOT EXISTS rk_snap_ind_cat (
            snapshot DATE, industry VARCHAR, category VARCHAR, ind_cat_affinity DOUBLE)
    """)
    con.execute("""
        INSERT INTO rk_snap_ind_cat
        WITH ic AS (
            SELECT st.industry, pr.category, sum(st.penetration) AS mass
            FROM rk_tmp_stats st JOIN products pr USING (product_id)
            GROUP BY st.industry, pr.category
        ),
        it AS (SELECT industry, sum(mass) AS tot FROM ic GROUP BY industry),
        gc AS (SELECT category, sum(global_penetration) AS mass FROM rk_tmp_prod GROUP BY category),
        gt AS (SELECT sum(mass) AS tot FROM gc)
        SELECT CAST($s AS DATE), ic.industry, ic.category,
               (ic.mass / nullif(it.tot, 0)) / nullif(gc.mass / nullif(gt.tot, 0), 0)
        FROM ic JOIN it USING (industry) JOIN gc USING (category) CROSS JOIN gt
    """, {"s": s})
    # Menu token <-> product association: lift = P(bought p in first 30 days | menu has t) /
    # P(bought p in first 30 days), among restaurants whose first 30 days ended before s, with
    # P(p | t) smoothed toward P(p). First-window purchases (not "ever bought") because long-lived
    # restaurants eventually buy almost everything, which flattens the lift toward 1.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE rk_tmp_tokbase AS
        SELECT DISTINCT fw.restaurant_id
        FROM rk_first_window fw JOIN restaurants r USING (restaurant_id)
        WHERE r.signup_date + to_days(CAST($h AS INTEGER)) <= CAST($s AS DATE)
    """, p)
    con.execute("""
        CREATE TABLE IF NOT EXISTS rk_snap_token (snapshot DATE, token VARCHAR, n_t BIGINT)
    """)
    con.execute("""
        INSERT INTO rk_snap_token
        SELECT CAST($s AS DATE), t.token, count(*) FROM rk_menu_tokens t
        JOIN rk_tmp_tokbase USING (restaurant_id)
        GROUP BY t.token HAVING count(*) >= $m
    """, {"s": s, "m": cfg.token_min_support})
    con.execute("""
        CREATE TABLE IF NOT EXISTS rk_snap_token_prod (
            snapshot DATE, token VARCHAR, product_id VARCHAR, b_tp BIGINT, lift DOUBLE, pen DOUBLE,
            qty DOUBLE, token_rank INTEGER)
    """)
    con.execute("""
        INSERT INTO rk_snap_token_prod
        WITH n AS (SELECT count(*) AS n FROM rk_tmp_tokbase),
        bought AS (
            SELECT fw.restaurant_id, fw.product_id, fw.quantity FROM rk_first_window fw
            JOIN rk_tmp_tokbase USING (restaurant_id)
        ),
        pb AS (SELECT product_id, count(*) AS b FROM bought GROUP BY product_id),
        tok AS (SELECT token, n_t FROM rk_snap_token WHERE snapshot = CAST($s AS DATE)),
        pairs AS (
            SELECT t.token, b.product_id, count(*) AS b_tp, sum(b.quantity) AS q_tp
            FROM rk_menu_tokens t JOIN tok USING (token)
            JOIN bought b ON b.restaurant_id = t.restaurant_id
            GROUP BY t.token, b.product_id HAVING count(*) >= $mp
        ),
        scored AS (
            SELECT pairs.token, pairs.product_id, pairs.b_tp,
                   ((pairs.b_tp + $a * pb.b / n.n) / (tok.n_t + $a)) / (pb.b / n.n) AS lift,
                   (pairs.b_tp + $a * pb.b / n.n) / (tok.n_t + $a) AS pen,
                   pairs.q_tp / tok.n_t AS qty
            FROM pairs JOIN tok USING (token) JOIN pb USING (product_id) CROSS JOIN n
        )
        SELECT CAST($s AS DATE), token, product_id, b_tp, lift, pen, qty,
               CAST(row_number() OVER (PARTITION BY token ORDER BY lift DESC, b_tp DESC, product_id) AS INTEGER)
        FROM scored
    """, {"s": s, "a": cfg.token_smoothing, "mp": cfg.token_min_pair})
    con.execute("DROP TABLE IF EXISTS rk_tmp_stats")


def candidate_feature_sql(queries: str = "rk_queries", tokens: str = "rk_menu_tokens") -> str:
    """Candidates + features for every row of `queries` (one definition for train, eval and serving).

    `queries` needs: restaurant_id, snapshot, industry, industry_code, label_confidence, region_code,
    size_ord. Parameters: $n_ind, $n_glob, $n_tok, $a (token smoothing).
    """
    return f"""
    WITH q AS (
        SELECT restaurant_id, snapshot, industry, industry_code, label_confidence, region_code, size_ord
        FROM {queries}
    ),
    qt AS (
        SELECT q.restaurant_id, q.snapshot, t.token, st.n_t
        FROM q JOIN {tokens} t USING (restaurant_id)
        JOIN rk_snap_token st ON st.snapshot = q.snapshot AND st.token = t.token
    ),
    cand AS (
        SELECT q.restaurant_id, ip.product_id FROM q
        JOIN rk_snap_ind_prod ip ON ip.snapshot = q.snapshot AND ip.industry = q.industry
        WHERE ip.ind_rank <= $n_ind
        UNION
        SELECT q.restaurant_id, gp.product_id FROM q
        JOIN rk_snap_prod gp ON gp.snapshot = q.snapshot
        WHERE gp.global_rank <= $n_glob
        UNION
        SELECT qt.restaurant_id, tp.product_id FROM qt
        JOIN rk_snap_token_prod tp ON tp.snapshot = qt.snapshot AND tp.token = qt.token
        WHERE tp.token_rank <= $n_tok
    ),
    tokf AS (
        SELECT c.restaurant_id, c.product_id,
               max(coalesce(tp.lift, $a / (qt.n_t + $a))) AS token_lift_max,
               avg(ln(coalesce(tp.lift, $a / (qt.n_t + $a)))) AS token_log_lift_mean,
               count(*) AS n_known_tokens,
               max(coalesce(tp.pen, 0.0)) AS token_pen_max,
               max(coalesce(tp.qty, 0.0)) AS token_qty_max,
               avg(coalesce(tp.qty, 0.0)) AS token_qty_mean
        FROM cand c JOIN qt USING (restaurant_id)
        LEFT JOIN rk_snap_token_prod tp
          ON tp.snapshot = qt.snapshot AND tp.token = qt.token AND tp.product_id = c.product_id
        GROUP BY c.restaurant_id, c.product_id
    )
    SELECT
        c.restaurant_id, c.product_id, q.industry,
        ip.ind_penetration, ip.ind_smoothed_penetration, ip.ind_lift, ip.ind_recency_score,
        ip.ind_qty_per_restaurant, ip.ind_rank, ip.ind_new_penetration, ip.ind_new_qty,
        ic.ind_cat_affinity,
        gp.global_penetration, gp.global_rank, gp.global_trend, gp.global_new_penetration,
        gp.category_code, gp.log_unit_price,
        -- No known menu token = no association evidence: lift 1 (log 0), never NULL, so training and
        -- serving agree for menus the model has never seen.
        coalesce(tokf.token_lift_max, 1.0) AS token_lift_max,
        coalesce(tokf.token_log_lift_mean, 0.0) AS token_log_lift_mean,
        coalesce(tokf.n_known_tokens, 0) AS n_known_tokens,
        tokf.token_pen_max, tokf.token_qty_max, tokf.token_qty_mean,
        q.label_confidence, q.industry_code, q.region_code, q.size_ord
    FROM cand c
    JOIN q USING (restaurant_id)
    JOIN rk_snap_prod gp ON gp.snapshot = q.snapshot AND gp.product_id = c.product_id
    LEFT JOIN rk_snap_ind_prod ip
      ON ip.snapshot = q.snapshot AND ip.industry = q.industry AND ip.product_id = c.product_id
    LEFT JOIN rk_snap_ind_cat ic
      ON ic.snapshot = q.snapshot AND ic.industry = q.industry AND ic.category = gp.category
    LEFT JOIN tokf ON tokf.restaurant_id = c.restaurant_id AND tokf.product_id = c.product_id
    """


def candidate_params(cfg: RankingConfig) -> dict:
    return {
        "n_ind": cfg.n_industry_candidates,
        "n_glob": cfg.n_global_candidates,
        "n_tok": cfg.n_token_candidates,
        "a": cfg.token_smoothing,
    }


def industry_code(industry: str | None) -> int:
    return INDUSTRY_CODES.index(industry) if industry in INDUSTRY_CODES else INDUSTRY_CODES.index(OTHER)


def _build_queries(con: duckdb.DuckDBPyConnection, cutoff: date, data_end: date, snapshots: list[date],
                   cfg: RankingConfig) -> None:
    train_snaps = [s for s in snapshots if s < cutoff]
    con.register("rk_snap_df", pd.DataFrame({"snapshot": pd.to_datetime(train_snaps).date}))
    ind_df = pd.DataFrame({"industry": list(INDUSTRY_CODES), "industry_code": range(len(INDUSTRY_CODES))})
    con.register("rk_ind_df", ind_df)
    con.execute("""
        CREATE OR REPLACE TABLE rk_queries AS
        WITH ri AS (  -- one label per restaurant even if the table keeps a history: the newest
            SELECT restaurant_id, industry, confidence FROM restaurant_industry
            QUALIFY row_number() OVER (PARTITION BY restaurant_id
                                       ORDER BY labeled_at DESC NULLS LAST, confidence DESC) = 1
        ),
        r AS (
            SELECT r.restaurant_id, r.signup_date, r.region, lower(r.size) AS size,
                   coalesce(ri.industry, $other) AS industry,
                   coalesce(ri.confidence, 0.0) AS label_confidence
            FROM restaurants r LEFT JOIN ri USING (restaurant_id)
        ),
        tagged AS (
            SELECT r.*,
                CASE
                  WHEN r.signup_date >= CAST($cutoff AS DATE)
                       AND r.signup_date + to_days(CAST($h AS INTEGER)) <= CAST($end AS DATE) THEN 'test'
                  WHEN r.signup_date >= (SELECT min(snapshot) FROM rk_snap_df)
                       AND r.signup_date + to_days(CAST($h AS INTEGER)) <= CAST($cutoff AS DATE) THEN 'train'
                END AS split
            FROM r
        )
        SELECT t.restaurant_id, t.signup_date, t.split,
               CASE WHEN t.split = 'test' THEN CAST($cutoff AS DATE)
                    ELSE (SELECT max(s.snapshot) FROM rk_snap_df s WHERE s.snapshot <= t.signup_date) END
                 AS snapshot,
               t.industry, coalesce(i.industry_code, (SELECT industry_code FROM rk_ind_df WHERE industry = $other))
                 AS industry_code,
               t.label_confidence, vr.code AS region_code,
               CASE t.size WHEN 'small' THEN 0 WHEN 'medium' THEN 1 WHEN 'large' THEN 2 END AS size_ord
        FROM tagged t
        LEFT JOIN rk_ind_df i USING (industry)
        LEFT JOIN rk_vocab_region vr ON vr.region = t.region
        WHERE t.split IS NOT NULL
    """, {"cutoff": cutoff, "end": data_end, "h": cfg.horizon_days, "other": OTHER})
    con.unregister("rk_snap_df")
    con.unregister("rk_ind_df")
    # Validation = the latest training sign-up month(s), widened month by month until it holds
    # enough queries for a stable early-stopping signal (a 4-day sliver of a month is not enough).
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


def _label_thresholds(con: duckdb.DuckDBPyConnection) -> list[float]:
    """Quartiles of positive first-30-day quantities among training queries (no test data)."""
    row = con.execute("""
        SELECT quantile_cont(fw.quantity, [0.25, 0.5, 0.75])
        FROM rk_first_window fw JOIN rk_queries q USING (restaurant_id)
        WHERE q.split IN ('train', 'valid') AND fw.quantity > 0
    """).fetchall()[0][0]
    return [float(x) for x in row] if row else [1.0, 2.0, 4.0]


def label_sql(thresholds: list[float]) -> str:
    t1, t2, t3 = (float(x) for x in thresholds)
    return (f"CASE WHEN coalesce(quantity, 0) <= 0 THEN 0 WHEN quantity <= {t1!r} THEN 1 "
            f"WHEN quantity <= {t2!r} THEN 2 WHEN quantity <= {t3!r} THEN 3 ELSE 4 END")


def build_ranking_dataset(
    con: duckdb.DuckDBPyConnection,
    cutoff: date | str | None = None,
    config: RankingConfig | None = None,
) -> RankingDataset:
    """Build the temporal cold-start dataset and serving snapshot tables in DuckDB.

    Reads restaurants, products, orders, restaurant_industry. Writes (replacing):
    rk_queries (restaurant_id, split, snapshot, ...), rk_truth (restaurant_id, product_id, quantity,
    label: every first-30-day purchase), rk_candidates (candidates + FEATURES + label + split), the
    rk_snap_* snapshot tables (training snapshots, the cutoff, and the serving snapshot = data end),
    and rk_vocab_*. Returns counts and candidate recall@N per split.
    """
    cfg = config or RankingConfig()
    start, end = data_span(con)
    cut = resolve_cutoff(con, cutoff if cutoff is not None else cfg.cutoff, cfg.holdout_days)
    if not (start < cut < end):
        raise ValueError(f"cutoff {cut} is outside the data span {start}..{end}")
    snapshots = monthly_snapshots(start + timedelta(days=cfg.min_history_days), cut)
    serving = end
    _build_base_tables(con, cfg)
    for s in [*snapshots, serving]:
        _build_snapshot(con, s, cfg)
    _build_queries(con, cut, end, snapshots, cfg)
    thresholds = _label_thresholds(con)
    con.execute(f"""
        CREATE OR REPLACE TABLE rk_truth AS
        SELECT q.restaurant_id, q.split, fw.product_id, fw.quantity, {label_sql(thresholds)} AS label
        FROM rk_queries q JOIN rk_first_window fw USING (restaurant_id)
        WHERE fw.quantity > 0
    """)
    feats = ", ".join(f"f.{c}" for c in FEATURES)
    con.execute(f"""
        CREATE OR REPLACE TABLE rk_candidates AS
        WITH f AS ({candidate_feature_sql()})
        SELECT q.split, f.restaurant_id, f.product_id, f.industry, {feats},
               coalesce(t.quantity, 0.0) AS quantity, coalesce(t.label, 0) AS label
        FROM f JOIN rk_queries q USING (restaurant_id)
        LEFT JOIN rk_truth t ON t.restaurant_id = f.restaurant_id AND t.product_id = f.product_id
    """, candidate_params(cfg))  # no ORDER BY: every reader orders (a full sort cost ~30 s at large)

    counts: dict[str, int] = {"snapshots": len(snapshots)}
    for split, n in con.execute("SELECT split, count(*) FROM rk_queries GROUP BY split").fetchall():
        counts[f"{split}_queries"] = n
    for split, n in con.execute(
        "SELECT split, count(DISTINCT restaurant_id) FROM rk_truth GROUP BY split"
    ).fetchall():
        counts[f"{split}_queries_with_positives"] = n
    for split, n in con.execute("SELECT split, count(*) FROM rk_candidates GROUP BY split").fetchall():
        counts[f"{split}_candidate_rows"] = n
    recall: dict[str, float] = {}
    for split, covered, total in con.execute("""
        SELECT t.split, count(c.product_id), count(*)
        FROM rk_truth t LEFT JOIN rk_candidates c
          ON c.restaurant_id = t.restaurant_id AND c.product_id = t.product_id
        GROUP BY t.split
    """).fetchall():
        recall[split] = covered / total if total else float("nan")
    categories = [r[0] for r in con.execute("SELECT category FROM rk_vocab_category ORDER BY code").fetchall()]
    regions = [r[0] for r in con.execute("SELECT region FROM rk_vocab_region ORDER BY code").fetchall()]
    return RankingDataset(
        cutoff=cut, data_start=start, data_end=end, serving_snapshot=serving, snapshots=snapshots,
        label_thresholds=thresholds, config=cfg, counts=counts, candidate_recall=recall,
        categories=categories, regions=regions, snapshot_hash=input_snapshot_hash(con),
    )


def input_snapshot_hash(con: duckdb.DuckDBPyConnection) -> str:
    """A content hash of the four input tables, so a run records exactly which data it saw."""
    import hashlib

    h = hashlib.sha256()
    for table in ("restaurants", "products", "orders", "restaurant_industry"):
        # Order-insensitive: the sum of row hashes (HUGEINT, so it cannot overflow).
        n, total = con.execute(
            f"SELECT count(*), coalesce(sum(CAST(hash(t) AS HUGEINT)), 0) FROM {table} t"
        ).fetchall()[0]
        h.update(f"{table}:{n}:{total};".encode())
    return h.hexdigest()[:16]


def load_split(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    """Candidate rows of one split, sorted by query (LightGBM needs each query contiguous)."""
    return con.execute(
        "SELECT * FROM rk_candidates WHERE split = $s ORDER BY restaurant_id, product_id", {"s": split}
    ).df()


def load_truth(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    return con.execute(
        "SELECT restaurant_id, product_id, quantity, label FROM rk_truth WHERE split = $s", {"s": split}
    ).df()


def load_queries(con: duckdb.DuckDBPyConnection, split: str) -> pd.DataFrame:
    return con.execute(
        "SELECT * FROM rk_queries WHERE split = $s ORDER BY restaurant_id", {"s": split}
    ).df()
