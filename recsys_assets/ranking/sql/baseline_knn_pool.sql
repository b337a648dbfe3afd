-- The kNN pool (baselines): the latest restaurants whose first window ended before the snapshot
-- (capped, so serving tables and the similarity join stay small at any scale).
SELECT r.restaurant_id FROM restaurants r
WHERE r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($snapshot AS DATE)
  AND r.restaurant_id IN (SELECT restaurant_id FROM rk_first_window)
ORDER BY r.signup_date DESC, r.restaurant_id LIMIT $knn_pool
