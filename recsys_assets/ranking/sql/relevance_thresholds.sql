-- Quartiles of positive first-window quantities among training queries (no test data).
SELECT quantile_cont(fw.quantity, [0.25, 0.5, 0.75])
FROM rk_first_window fw JOIN rk_queries q USING (restaurant_id)
WHERE q.split IN ('train', 'valid') AND fw.quantity > 0
