-- rk_snap_prod, every snapshot at once ($snapshots): product-level (global) statistics from orders
-- before the snapshot and restaurants signed up before it, with the global popularity rank and the
-- category code. Sign-ups, first purchases and first windows are counted per snapshot bucket
-- (snapshot_buckets.sql) and summed over the buckets up to the snapshot; the 30/90-day quantities
-- sum the orders per day (the windows start and end at midnight) over the days in each window.
WITH {{snapshot_buckets}},
signed_b AS (
    SELECT s.j, count(*) AS n FROM restaurants r
    JOIN snaps s ON r.signup_date >= s.after AND r.signup_date < s.snapshot
    GROUP BY s.j
),
buyers_b AS (
    SELECT fp.product_id, s.j, count(*) AS b
    FROM rk_first_purchase fp JOIN restaurants r USING (restaurant_id)
    JOIN snaps s ON greatest(CAST(r.signup_date AS TIMESTAMP), fp.first_at) >= s.after_ts
     AND greatest(CAST(r.signup_date AS TIMESTAMP), fp.first_at) < s.before_ts
    GROUP BY ALL
),
ended_b AS (SELECT j, count(*) AS n FROM ended GROUP BY j),
newp_b AS (
    SELECT fw.product_id, e.j, count(*) AS b
    FROM rk_first_window fw JOIN ended e USING (restaurant_id)
    GROUP BY ALL
),
-- Up to each snapshot: n, nn (restaurants), buyers, newp (per product).
n AS (
    SELECT s.snapshot, CAST(greatest(coalesce(sum(b.n), 0), 1) AS BIGINT) AS n
    FROM snaps s LEFT JOIN signed_b b ON b.j <= s.j GROUP BY s.snapshot
),
nn AS (
    SELECT s.snapshot, CAST(greatest(coalesce(sum(b.n), 0), 1) AS BIGINT) AS n
    FROM snaps s LEFT JOIN ended_b b ON b.j <= s.j GROUP BY s.snapshot
),
buyers AS (
    SELECT b.product_id, s.snapshot, CAST(sum(b.b) AS BIGINT) AS b FROM buyers_b b JOIN snaps s ON s.j >= b.j GROUP BY ALL
),
newp AS (
    SELECT b.product_id, s.snapshot, CAST(sum(b.b) AS BIGINT) AS b FROM newp_b b JOIN snaps s ON s.j >= b.j GROUP BY ALL
),
daily AS (
    SELECT product_id, CAST(ordered_at AS DATE) AS d, sum(quantity) AS q FROM orders
    WHERE ordered_at < (SELECT max(before_ts) FROM snaps)
    GROUP BY ALL
),
q AS (
    SELECT d.product_id, s.snapshot,
           sum(d.q) FILTER (WHERE d.d >= s.snapshot - INTERVAL 30 DAY) AS q30, sum(d.q) AS q90
    FROM daily d JOIN snaps s ON d.d >= s.snapshot - INTERVAL 90 DAY AND d.d < s.snapshot
    GROUP BY ALL
),
prod AS (
    SELECT
        n.snapshot,
        pr.product_id,
        pr.category,
        coalesce(buyers.b, 0) / n.n AS global_penetration,
        (coalesce(q.q30, 0) + 1.0) / (coalesce(q.q90, 0) / 3.0 + 1.0) AS global_trend,
        coalesce(newp.b, 0) / nn.n AS global_new_penetration,
        ln(1 + greatest(coalesce(pr.unit_price, 0), 0)) AS log_unit_price
    FROM products pr
    CROSS JOIN n JOIN nn USING (snapshot)
    LEFT JOIN buyers USING (snapshot, product_id)
    LEFT JOIN q USING (snapshot, product_id)
    LEFT JOIN newp USING (snapshot, product_id)
)
SELECT
    t.snapshot, t.product_id, t.category, t.global_penetration, t.global_trend,
    t.global_new_penetration, t.log_unit_price,
    CAST(row_number() OVER (PARTITION BY t.snapshot ORDER BY t.global_penetration DESC,
                            t.global_new_penetration DESC, t.product_id) AS INTEGER) AS global_rank,
    vc.code AS category_code
FROM prod t LEFT JOIN rk_vocab_category vc USING (category)
ORDER BY t.snapshot  -- rows of one snapshot together: a candidate block reads one or two snapshots
