-- Common table expressions (a fragment of snap_basket.sql and snap_token_share.sql): `share`, each
-- restaurant's basket share of p (p's share of the quantity it ordered before the snapshot: its
-- whole history, not only its first window), for the restaurants whose first window ended before
-- the snapshot (the base of rk_snap_token).
base AS (
    SELECT DISTINCT fw.restaurant_id
    FROM rk_first_window fw JOIN restaurants r USING (restaurant_id)
    WHERE r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($snapshot AS DATE)
),
bought AS (
    SELECT o.restaurant_id, o.product_id, sum(o.quantity) AS qty
    FROM orders o JOIN base USING (restaurant_id)
    WHERE o.ordered_at < CAST($snapshot AS TIMESTAMP)
    GROUP BY o.restaurant_id, o.product_id
),
share AS (
    SELECT restaurant_id, product_id, qty / sum(qty) OVER (PARTITION BY restaurant_id) AS share
    FROM bought
)
