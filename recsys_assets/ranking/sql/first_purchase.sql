-- rk_first_purchase: when each restaurant first bought each product.
CREATE OR REPLACE TABLE rk_first_purchase AS
SELECT restaurant_id, product_id, min(ordered_at) AS first_at
FROM orders GROUP BY restaurant_id, product_id
