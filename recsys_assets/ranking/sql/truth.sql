-- rk_truth: every first-window purchase of every query, with its quantity and graded relevance
-- (0 not bought, else 1..4 by the thresholds: the quartiles of positive first-window quantities
-- among train/valid queries).
CREATE OR REPLACE TABLE rk_truth AS
SELECT q.restaurant_id, q.split, fw.product_id, fw.quantity,
       CASE WHEN coalesce(fw.quantity, 0) <= 0 THEN 0
            WHEN fw.quantity <= $threshold_1 THEN 1
            WHEN fw.quantity <= $threshold_2 THEN 2
            WHEN fw.quantity <= $threshold_3 THEN 3
            ELSE 4 END AS relevance
FROM rk_queries q JOIN rk_first_window fw USING (restaurant_id)
WHERE fw.quantity > 0
