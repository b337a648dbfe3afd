-- rk_candidates rows of the queries in {{queries}} (rk_queries, or a block of it): candidates +
-- features (candidate_features.sql) with the truth's quantity and relevance (0 when not bought).
-- dataset.py creates rk_candidates from the first block and appends the others. No ORDER BY: every
-- reader orders (a full sort cost ~30 s at the large scale).
WITH f AS (
{{candidate_features}}
)
SELECT q.split, f.*, coalesce(t.quantity, 0.0) AS quantity, coalesce(t.relevance, 0) AS relevance
FROM f JOIN {{queries}} q USING (restaurant_id)
LEFT JOIN rk_truth t ON t.restaurant_id = f.restaurant_id AND t.product_id = f.product_id
