-- Candidates + features for every row of rk_queries: ONE definition for training, evaluation and
-- serving (the pyfunc registers its requests as rk_queries / rk_menu_tokens over the exported
-- serving snapshot). rk_queries needs: restaurant_id, snapshot, industry, industry_code,
-- label_confidence, region_code, size_ord. The feature columns come from the feature registry
-- (ranking/features.py), which references the aliases below: q, ip, ic, gp, tokf, gb. {{queries}}
-- is rk_queries, or a table holding a block of its rows (the dataset builds its candidates by
-- blocks).
WITH q AS (
    SELECT restaurant_id, snapshot, industry, industry_code, label_confidence, region_code, size_ord
    FROM {{queries}}
),
qt0 AS (
    SELECT q.restaurant_id, q.snapshot, t.token FROM q JOIN rk_menu_tokens t USING (restaurant_id)
),
-- Known tokens of the queries' snapshots, numbered (tid) so that the large joins below compare
-- integers, not (snapshot, text) pairs.
known AS (
    SELECT snapshot, token, n_t,
           CAST(row_number() OVER (ORDER BY snapshot, token) AS INTEGER) AS tid
    FROM rk_snap_token
    WHERE snapshot IN (SELECT DISTINCT snapshot FROM q)
),
-- A menu word also counts as the longest known token(s) it contains (at least $contain_min_len
-- characters): a dish written the house way (특김치찌개, 김치찌개정식) keeps its dish's evidence.
-- Mapped once per distinct (snapshot, word), not per restaurant.
inside AS (
    SELECT snapshot, token, tid, n_t FROM (
        SELECT u.snapshot, u.token, k.tid, k.n_t,
               length(k.token) = max(length(k.token)) OVER (PARTITION BY u.snapshot, u.token)
                   AS longest
        FROM (SELECT DISTINCT snapshot, token FROM qt0) u
        JOIN known k ON k.snapshot = u.snapshot AND length(k.token) >= $contain_min_len
         AND length(u.token) > length(k.token) AND contains(u.token, k.token)
    ) WHERE longest
),
qt AS (
    SELECT qt0.restaurant_id, k.tid, k.n_t
    FROM qt0 JOIN known k USING (snapshot, token)
    UNION
    SELECT qt0.restaurant_id, i.tid, i.n_t
    FROM qt0 JOIN inside i USING (snapshot, token)
),
-- A token's default lift $a / (n_t + $a) (what it contributes for a product it has no entry for)
-- and the logarithms, computed once per token and per entry, not per (query, candidate, token).
qd AS (
    SELECT restaurant_id, tid, n_t, $a / (n_t + $a) AS d, ln($a / (n_t + $a)) AS ln_d FROM qt
),
tpk AS (
    SELECT k.tid, tp.product_id, tp.lift, ln(tp.lift) AS ln_lift, tp.pen, tp.qty, tp.token_rank
    FROM known k JOIN rk_snap_token_prod tp USING (snapshot, token)
),
tsk AS (
    SELECT k.tid, ts.product_id, ts.share_sum
    FROM known k JOIN rk_snap_token_share ts USING (snapshot, token)
),
-- Both token x product tables as one, so each (query, candidate, token) row needs one lookup.
tps AS (
    SELECT tid, product_id, tpk.lift, tpk.ln_lift, tpk.pen, tpk.qty, tsk.share_sum
    FROM tpk FULL JOIN tsk USING (tid, product_id)
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
    SELECT qt.restaurant_id, tpk.product_id FROM qt JOIN tpk USING (tid)
    WHERE tpk.token_rank <= $n_tok
),
-- `g`: the product's basket share among all earlier restaurants (rk_snap_basket, their whole order
-- history); `sh`: its mean basket share among those with the token (rk_snap_token_share),
-- smoothed toward `g` with $share_a pseudo-restaurants.
cg AS (
    SELECT c.restaurant_id, c.product_id, coalesce(b.basket_share, 0.0) AS g
    FROM cand c JOIN q USING (restaurant_id)
    LEFT JOIN rk_snap_basket b ON b.snapshot = q.snapshot AND b.product_id = c.product_id
),
-- One row per (query, candidate, known token): the token-product statistics, or the defaults.
tokr AS (
    SELECT c.restaurant_id, c.product_id, c.g,
           coalesce(tps.lift, qd.d) AS lift, coalesce(tps.ln_lift, qd.ln_d) AS ln_lift,
           coalesce(tps.pen, 0.0) AS pen, coalesce(tps.qty, 0.0) AS qty,
           (coalesce(tps.share_sum, 0.0) + $share_a * c.g) / (qd.n_t + $share_a) AS sh
    FROM cg c JOIN qd USING (restaurant_id)
    LEFT JOIN tps ON tps.tid = qd.tid AND tps.product_id = c.product_id
),
-- The menu-token aggregates, in one pass over tokr.
tokf AS (
    SELECT restaurant_id, product_id,
           max(lift) AS token_lift_max,
           avg(ln_lift) AS token_log_lift_mean,
           count(*) AS n_known_tokens,
           max(pen) AS token_pen_max,
           max(qty) AS token_qty_max,
           avg(qty) AS token_qty_mean,
           max(sh) AS share_max,
           avg(sh) AS share_mean,
           max(ln((sh + 1e-5) / (g + 1e-5))) AS share_log_lift_max,
           sum(ln((sh + 1e-5) / (g + 1e-5))) AS share_log_lift_sum
    FROM tokr GROUP BY restaurant_id, product_id
)
SELECT
    c.restaurant_id, c.product_id, q.industry,
    {{feature_columns}}
FROM cand c
JOIN q USING (restaurant_id)
JOIN rk_snap_prod gp ON gp.snapshot = q.snapshot AND gp.product_id = c.product_id
LEFT JOIN rk_snap_ind_prod ip
  ON ip.snapshot = q.snapshot AND ip.industry = q.industry AND ip.product_id = c.product_id
LEFT JOIN rk_snap_ind_cat ic
  ON ic.snapshot = q.snapshot AND ic.industry = q.industry AND ic.category = gp.category
LEFT JOIN tokf ON tokf.restaurant_id = c.restaurant_id AND tokf.product_id = c.product_id
LEFT JOIN rk_snap_basket gb ON gb.snapshot = q.snapshot AND gb.product_id = c.product_id
