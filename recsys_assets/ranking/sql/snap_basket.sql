-- rk_snap_basket, one snapshot: each product's mean basket share among the restaurants whose first
-- window ended before the snapshot (the base of rk_snap_token): a restaurant's basket share of p is
-- p's share of the quantity it ordered before the snapshot (its whole history, not only its first
-- window: several times the evidence), averaged over those restaurants, each counting once.
WITH base AS (
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
),
n AS (SELECT greatest(count(DISTINCT restaurant_id), 1) AS n FROM share)
SELECT CAST($snapshot AS DATE) AS snapshot, s.product_id, sum(s.share) / any_value(n.n) AS basket_share
FROM share s CROSS JOIN n
GROUP BY s.product_id
