-- bl_ind (baselines), one snapshot: industry popularity (ind_rank, the order of
-- industry_top_products) and the order by first-window penetration (new_rank: what the industry's
-- restaurants bought in their first 30 days, the same window the holdout's truth covers).
SELECT industry, product_id, ind_rank, ind_new_penetration,
       CAST(row_number() OVER (PARTITION BY industry
            ORDER BY ind_new_penetration DESC, ind_new_qty DESC, ind_rank) AS INTEGER) AS new_rank
FROM rk_snap_ind_prod WHERE snapshot = CAST($snapshot AS DATE)
