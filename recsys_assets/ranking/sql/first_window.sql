-- rk_first_window: first-window (horizon_days) purchases of every restaurant. Used only for restaurants
-- whose window has ended before the snapshot that reads it (signup + horizon <= snapshot), or as truth.
CREATE OR REPLACE TABLE rk_first_window AS
SELECT o.restaurant_id, o.product_id, sum(o.quantity) AS quantity
FROM orders o JOIN restaurants r USING (restaurant_id)
WHERE o.ordered_at >= CAST(r.signup_date AS TIMESTAMP)
  AND o.ordered_at < CAST(r.signup_date AS TIMESTAMP) + to_days(CAST($horizon_days AS INTEGER))
GROUP BY o.restaurant_id, o.product_id
