-- rk_candidates: candidates + features of every query (candidate_features.sql) with the truth's
-- quantity and relevance (0 when not bought). No ORDER BY: every reader orders (a full sort cost
-- ~30 s at the large scale).
CREATE OR REPLACE TABLE rk_candidates AS
WITH f AS (
{{candidate_features}}
)
SELECT q.split, f.*, coalesce(t.quantity, 0.0) AS quantity, coalesce(t.relevance, 0) AS relevance
FROM f JOIN rk_queries q USING (restaurant_id)
LEFT JOIN rk_truth t ON t.restaurant_id = f.restaurant_id AND t.product_id = f.product_id
