-- bl_knn_buy (baselines): first-window purchases of the kNN pool.
WITH pool AS ({{knn_pool}})
SELECT fw.restaurant_id, fw.product_id, fw.quantity FROM rk_first_window fw JOIN pool USING (restaurant_id)
