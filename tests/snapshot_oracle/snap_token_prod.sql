-- rk_snap_token_prod, one snapshot: menu token <-> product association. Among restaurants whose
-- first window ended before the snapshot, lift = P(bought p in the first window | menu has t) /
-- P(bought p in the first window), with P(p | t) smoothed toward P(p). First-window purchases (not
-- "ever bought") because long-lived restaurants eventually buy almost everything, which flattens
-- the lift toward 1. Reads the snapshot's rk_snap_token rows.
WITH tokbase AS (
    SELECT DISTINCT fw.restaurant_id
    FROM rk_first_window fw JOIN restaurants r USING (restaurant_id)
    WHERE r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($snapshot AS DATE)
),
n AS (SELECT count(*) AS n FROM tokbase),
bought AS (
    SELECT fw.restaurant_id, fw.product_id, fw.quantity FROM rk_first_window fw
    JOIN tokbase USING (restaurant_id)
),
pb AS (SELECT product_id, count(*) AS b FROM bought GROUP BY product_id),
tok AS (SELECT token, n_t FROM rk_snap_token WHERE snapshot = CAST($snapshot AS DATE)),
pairs AS (
    SELECT t.token, b.product_id, count(*) AS b_tp, sum(b.quantity) AS q_tp
    FROM rk_menu_tokens t JOIN tok USING (token)
    JOIN bought b ON b.restaurant_id = t.restaurant_id
    GROUP BY t.token, b.product_id HAVING count(*) >= $token_min_pair
),
scored AS (
    SELECT pairs.token, pairs.product_id, pairs.b_tp,
           ((pairs.b_tp + $token_smoothing * pb.b / n.n) / (tok.n_t + $token_smoothing))
               / (pb.b / n.n) AS lift,
           (pairs.b_tp + $token_smoothing * pb.b / n.n) / (tok.n_t + $token_smoothing) AS pen,
           pairs.q_tp / tok.n_t AS qty
    FROM pairs JOIN tok USING (token) JOIN pb USING (product_id) CROSS JOIN n
)
SELECT
    CAST($snapshot AS DATE) AS snapshot, token, product_id, b_tp, lift, pen, qty,
    CAST(row_number() OVER (PARTITION BY token ORDER BY lift DESC, b_tp DESC, product_id) AS INTEGER)
        AS token_rank
FROM scored
