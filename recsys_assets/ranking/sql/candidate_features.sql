-- Candidates + features for every row of rk_queries: ONE definition for training, evaluation and
-- serving (the pyfunc registers its requests as rk_queries / rk_menu_tokens over the exported
-- serving snapshot). rk_queries needs: restaurant_id, snapshot, industry, industry_code,
-- label_confidence, region_code, size_ord. The feature columns come from the feature registry
-- (ranking/features.py), which references the aliases below: q, ip, ic, gp, tokf, tshf, gb.
WITH q AS (
    SELECT restaurant_id, snapshot, industry, industry_code, label_confidence, region_code, size_ord
    FROM rk_queries
),
qt0 AS (
    SELECT q.restaurant_id, q.snapshot, t.token FROM q JOIN rk_menu_tokens t USING (restaurant_id)
),
known AS (
    SELECT snapshot, token, n_t FROM rk_snap_token
    WHERE snapshot IN (SELECT DISTINCT snapshot FROM q)
),
-- A menu word also counts as the longest known token(s) it contains (at least $contain_min_len
-- characters): a dish written the house way (특김치찌개, 김치찌개정식) keeps its dish's evidence.
-- Mapped once per distinct (snapshot, word), not per restaurant.
inside AS (
    SELECT snapshot, token, known_token, n_t FROM (
        SELECT u.snapshot, u.token, k.token AS known_token, k.n_t,
               length(k.token) = max(length(k.token)) OVER (PARTITION BY u.snapshot, u.token)
                   AS longest
        FROM (SELECT DISTINCT snapshot, token FROM qt0) u
        JOIN known k ON k.snapshot = u.snapshot AND length(k.token) >= $contain_min_len
         AND length(u.token) > length(k.token) AND contains(u.token, k.token)
    ) WHERE longest
),
qt AS (
    SELECT qt0.restaurant_id, qt0.snapshot, k.token, k.n_t
    FROM qt0 JOIN known k USING (snapshot, token)
    UNION
    SELECT qt0.restaurant_id, qt0.snapshot, i.known_token, i.n_t
    FROM qt0 JOIN inside i USING (snapshot, token)
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
),
-- Per known token: the mean basket share of the product among earlier restaurants with the token
-- (rk_snap_token_share, their whole order history), smoothed toward its share among all of them
-- (rk_snap_basket) with $share_a pseudo-restaurants; `g` that overall share.
tsh AS (
    SELECT c.restaurant_id, c.product_id, coalesce(b.basket_share, 0.0) AS g,
           (coalesce(ts.share_sum, 0.0) + $share_a * coalesce(b.basket_share, 0.0))
               / (qt.n_t + $share_a) AS sh
    FROM cand c JOIN qt USING (restaurant_id)
    LEFT JOIN rk_snap_basket b ON b.snapshot = qt.snapshot AND b.product_id = c.product_id
    LEFT JOIN rk_snap_token_share ts
      ON ts.snapshot = qt.snapshot AND ts.token = qt.token AND ts.product_id = c.product_id
),
tshf AS (
    SELECT restaurant_id, product_id, max(sh) AS share_max, avg(sh) AS share_mean,
           max(ln((sh + 1e-5) / (g + 1e-5))) AS share_log_lift_max,
           sum(ln((sh + 1e-5) / (g + 1e-5))) AS share_log_lift_sum
    FROM tsh GROUP BY restaurant_id, product_id
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
LEFT JOIN tshf ON tshf.restaurant_id = c.restaurant_id AND tshf.product_id = c.product_id
LEFT JOIN rk_snap_basket gb ON gb.snapshot = q.snapshot AND gb.product_id = c.product_id
