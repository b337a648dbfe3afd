-- rk_candidates rows of the queries in {{queries}} (rk_queries, or a block of it): candidates +
-- features (candidate_features.sql) with the truth's quantity and relevance (0 when not bought).
-- dataset.py creates rk_candidates from the first block and appends the others. No ORDER BY: every
-- reader orders (a full sort cost ~30 s at the large scale). The truth is cut to the block's
-- queries first: joined whole, its 1.6M rows (large scale) cost each block ~0.9 CPU-s.
WITH f AS (
{{candidate_features}}
)
SELECT q.split, f.*, coalesce(t.quantity, 0.0) AS quantity, coalesce(t.relevance, 0) AS relevance
FROM f JOIN {{queries}} q USING (restaurant_id)
LEFT JOIN (SELECT * FROM rk_truth SEMI JOIN {{queries}} USING (restaurant_id)) t
  ON t.restaurant_id = f.restaurant_id AND t.product_id = f.product_id
