-- Every product code of the baseline scorer (0 .. $n_products - 1): its global rank (NULL when not in
-- bl_prod) and menu_token_association's prior term outside the query's industry list (as above).
SELECT c.product_id, p.global_rank,
       ln(coalesce(0.5 * p.global_new_penetration, 0) + 1e-6) AS base
FROM (SELECT CAST(range AS INTEGER) AS product_id FROM range($n_products)) c
LEFT JOIN bl_prod p USING (product_id)
ORDER BY c.product_id
