-- The industry lists of the menu baselines' numpy ranking (ranking/menu_baselines.py), from the
-- baseline scorer's coded bl_* tables: ranks for the padding, and menu_token_association's prior
-- term ln(penetration + 1e-6) computed here, by the expression its former SQL used, so every key
-- is the same float.
SELECT i.industry, i.product_id, i.ind_rank, i.new_rank,
       ln(coalesce(i.ind_new_penetration, 0.5 * p.global_new_penetration, 0) + 1e-6) AS base
FROM bl_ind i LEFT JOIN bl_prod p USING (product_id)
WHERE i.industry IS NOT NULL
