-- rk_snap_ind_cat, one snapshot: industry x category affinity = the industry's share of penetration
-- mass in a category over the global share (1 = as much as everyone else, >1 = this industry leans
-- on the category). Reads the snapshot's rk_snap_ind_prod and rk_snap_prod rows, ordered by
-- product so the floating-point sums add in a fixed order (single-threaded: bit-for-bit repeatable).
WITH ip AS (
    SELECT industry, product_id, ind_penetration FROM rk_snap_ind_prod
    WHERE snapshot = CAST($snapshot AS DATE)
    ORDER BY industry, product_id
),
ic AS (
    SELECT ip.industry, pr.category, sum(ip.ind_penetration) AS mass
    FROM ip JOIN products pr USING (product_id)
    GROUP BY ip.industry, pr.category
),
it AS (SELECT industry, sum(mass) AS tot FROM ic GROUP BY industry),
gc AS (
    SELECT category, sum(global_penetration) AS mass
    FROM (SELECT category, global_penetration FROM rk_snap_prod
          WHERE snapshot = CAST($snapshot AS DATE) ORDER BY product_id)
    GROUP BY category
),
gt AS (SELECT sum(mass) AS tot FROM gc)
SELECT
    CAST($snapshot AS DATE) AS snapshot, ic.industry, ic.category,
    (ic.mass / nullif(it.tot, 0)) / nullif(gc.mass / nullif(gt.tot, 0), 0) AS ind_cat_affinity
FROM ic JOIN it USING (industry) JOIN gc USING (category) CROSS JOIN gt
