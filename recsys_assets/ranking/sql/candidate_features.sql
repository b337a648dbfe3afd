-- Candidates + features for every row of rk_queries: ONE definition for training, evaluation and
-- serving (the pyfunc registers its requests as rk_queries / rk_menu_tokens over the exported
-- serving snapshot). rk_queries needs: restaurant_id, snapshot, industry, industry_code,
-- label_confidence, region_code, size_ord. The feature columns come from the feature registry
-- (ranking/features.py), which references the aliases below: q, ip, ic, gp, tokf.
WITH q AS (
    SELECT restaurant_id, snapshot, industry, industry_code, label_confidence, region_code, size_ord
    FROM rk_queries
),
qt AS (
    SELECT q.restaurant_id, q.snapshot, t.token, st.n_t
    FROM q JOIN rk_menu_tokens t USING (restaurant_id)
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
    {{feature_columns}}
FROM cand c
JOIN q USING (restaurant_id)
JOIN rk_snap_prod gp ON gp.snapshot = q.snapshot AND gp.product_id = c.product_id
LEFT JOIN rk_snap_ind_prod ip
  ON ip.snapshot = q.snapshot AND ip.industry = q.industry AND ip.product_id = c.product_id
LEFT JOIN rk_snap_ind_cat ic
  ON ic.snapshot = q.snapshot AND ic.industry = q.industry AND ic.category = gp.category
LEFT JOIN tokf ON tokf.restaurant_id = c.restaurant_id AND tokf.product_id = c.product_id
