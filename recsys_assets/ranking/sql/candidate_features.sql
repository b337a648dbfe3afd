-- Candidates + features for every query: ONE definition for training, evaluation and serving
-- (the pyfunc registers its requests as rk_queries / rk_menu_tokens over the exported serving
-- snapshot). Run it through ranking/token_features.py (`candidate_features`): cf_*.sql number the
-- queries (rk_cf_queries, from rk_queries or a block of its rows: restaurant_id, snapshot,
-- industry, industry_code, label_confidence, region_code, size_ord) and find their candidates and
-- known tokens; numpy aggregates the token x product statistics over them into {{candidates}},
-- one row per (query, candidate).
-- The feature columns come from the feature registry (ranking/features.py), which references the
-- aliases below: q, ip, ic, gp, tokf (the candidate with its token aggregates), gb.
SELECT
    tokf.restaurant_id, tokf.product_id, q.industry,
    {{feature_columns}}
FROM {{candidates}} tokf
JOIN rk_cf_queries q USING (rq)
JOIN rk_snap_prod gp ON gp.snapshot = q.snapshot AND gp.product_id = tokf.product_id
LEFT JOIN rk_snap_ind_prod ip
  ON ip.snapshot = q.snapshot AND ip.industry = q.industry AND ip.product_id = tokf.product_id
LEFT JOIN rk_snap_ind_cat ic
  ON ic.snapshot = q.snapshot AND ic.industry = q.industry AND ic.category = gp.category
LEFT JOIN rk_snap_basket gb ON gb.snapshot = q.snapshot AND gb.product_id = tokf.product_id
