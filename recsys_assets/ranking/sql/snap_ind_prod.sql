-- rk_snap_ind_prod, every snapshot at once ($snapshots): the warehouse's industry x product
-- statistics (`stats`, the very SQL that builds industry_product_stats, here as of every snapshot)
-- as ind_* features, the product's rank within the industry (the order of industry_top_products),
-- and first-window behaviour of the industry's restaurants whose window ended by the snapshot
-- (smoothed toward the global value): sums per bucket of window ends (snapshot_buckets.sql), summed over
-- the buckets up to each snapshot.
WITH stats AS (
{{industry_product_stats}}
),
{{snapshot_buckets}},
newbase AS (  -- one row per label row, as the statistics count them
    SELECT e.restaurant_id, ri.industry, e.j FROM ended e JOIN restaurant_industry ri USING (restaurant_id)
),
nsize_b AS (SELECT industry, j, count(*) AS n FROM newbase GROUP BY ALL),
nsize AS (
    SELECT b.industry, s.snapshot, CAST(sum(b.n) AS BIGINT) AS n
    FROM nsize_b b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
),
npair_b AS (
    SELECT nb.industry, fw.product_id, nb.j, count(*) AS b, sum(fw.quantity) AS qty
    FROM rk_first_window fw JOIN newbase nb USING (restaurant_id)
    GROUP BY ALL
),
npair AS (
    SELECT b.industry, b.product_id, s.snapshot, CAST(sum(b.b) AS BIGINT) AS b, sum(b.qty) AS qty
    FROM npair_b b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
),
st AS (SELECT CAST(as_of AS DATE) AS snapshot, * EXCLUDE (as_of) FROM stats)
SELECT
    st.snapshot,
    st.industry,
    st.product_id,
    st.penetration AS ind_penetration,
    st.smoothed_penetration AS ind_smoothed_penetration,
    st.lift AS ind_lift,
    st.recency_score AS ind_recency_score,
    st.quantity / st.industry_restaurants AS ind_qty_per_restaurant,
    CAST(row_number() OVER (
        PARTITION BY st.snapshot, st.industry
        ORDER BY st.smoothed_penetration DESC, st.recency_score DESC, st.quantity DESC, st.product_id
    ) AS INTEGER) AS ind_rank,
    (coalesce(np.b, 0) + $new_smoothing * coalesce(gp.global_new_penetration, 0))
        / (coalesce(ns.n, 0) + $new_smoothing) AS ind_new_penetration,
    coalesce(np.qty, 0) / greatest(coalesce(ns.n, 0), 1) AS ind_new_qty
FROM st
LEFT JOIN nsize ns USING (snapshot, industry)
LEFT JOIN npair np USING (snapshot, industry, product_id)
LEFT JOIN rk_snap_prod gp USING (snapshot, product_id)
ORDER BY snapshot  -- rows of one snapshot together: a candidate block reads one or two snapshots
