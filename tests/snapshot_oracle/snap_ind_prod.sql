-- rk_snap_ind_prod, one snapshot: the warehouse's industry x product statistics (`stats`, the very
-- SQL that builds industry_product_stats, here as of the snapshot) as ind_* features, the product's
-- rank within the industry (the order of industry_top_products), and first-window behaviour of the
-- industry's restaurants whose window ended before the snapshot (smoothed toward the global value).
WITH stats AS (
{{industry_product_stats}}
),
newbase AS (
    SELECT r.restaurant_id, ri.industry FROM restaurants r
    JOIN restaurant_industry ri USING (restaurant_id)
    WHERE r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($snapshot AS DATE)
),
nsize AS (SELECT industry, count(*) AS n FROM newbase GROUP BY industry),
npair AS (
    SELECT nb.industry, fw.product_id, count(*) AS b, sum(fw.quantity) AS qty
    FROM rk_first_window fw JOIN newbase nb USING (restaurant_id)
    GROUP BY nb.industry, fw.product_id
),
gp AS (
    SELECT product_id, global_new_penetration FROM rk_snap_prod
    WHERE snapshot = CAST($snapshot AS DATE)
)
SELECT
    CAST($snapshot AS DATE) AS snapshot,
    st.industry,
    st.product_id,
    st.penetration AS ind_penetration,
    st.smoothed_penetration AS ind_smoothed_penetration,
    st.lift AS ind_lift,
    st.recency_score AS ind_recency_score,
    st.quantity / st.industry_restaurants AS ind_qty_per_restaurant,
    CAST(row_number() OVER (
        PARTITION BY st.industry
        ORDER BY st.smoothed_penetration DESC, st.recency_score DESC, st.quantity DESC, st.product_id
    ) AS INTEGER) AS ind_rank,
    (coalesce(np.b, 0) + $new_smoothing * coalesce(gp.global_new_penetration, 0))
        / (coalesce(ns.n, 0) + $new_smoothing) AS ind_new_penetration,
    coalesce(np.qty, 0) / greatest(coalesce(ns.n, 0), 1) AS ind_new_qty
FROM stats st
LEFT JOIN nsize ns USING (industry)
LEFT JOIN npair np ON np.industry = st.industry AND np.product_id = st.product_id
LEFT JOIN gp ON gp.product_id = st.product_id
