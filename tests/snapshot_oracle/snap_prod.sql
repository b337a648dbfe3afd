-- rk_snap_prod, one snapshot: product-level (global) statistics from orders before the snapshot
-- and restaurants signed up before it, with the global popularity rank and the category code.
WITH base AS (SELECT restaurant_id FROM restaurants WHERE signup_date < CAST($snapshot AS DATE)),
n AS (SELECT greatest(count(*), 1) AS n FROM base),
buyers AS (
    SELECT fp.product_id, count(*) AS b
    FROM rk_first_purchase fp JOIN base USING (restaurant_id)
    WHERE fp.first_at < CAST($snapshot AS TIMESTAMP) GROUP BY fp.product_id
),
q AS (
    SELECT product_id,
           sum(quantity) FILTER (WHERE ordered_at >= CAST($snapshot AS TIMESTAMP) - INTERVAL 30 DAY) AS q30,
           sum(quantity) AS q90
    FROM orders
    WHERE ordered_at < CAST($snapshot AS TIMESTAMP)
      AND ordered_at >= CAST($snapshot AS TIMESTAMP) - INTERVAL 90 DAY
    GROUP BY product_id
),
newbase AS (
    SELECT restaurant_id FROM restaurants
    WHERE signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($snapshot AS DATE)
),
nn AS (SELECT greatest(count(*), 1) AS n FROM newbase),
newp AS (
    SELECT fw.product_id, count(*) AS b
    FROM rk_first_window fw JOIN newbase USING (restaurant_id) GROUP BY fw.product_id
),
prod AS (
    SELECT
        pr.product_id,
        pr.category,
        coalesce(buyers.b, 0) / n.n AS global_penetration,
        (coalesce(q.q30, 0) + 1.0) / (coalesce(q.q90, 0) / 3.0 + 1.0) AS global_trend,
        coalesce(newp.b, 0) / nn.n AS global_new_penetration,
        ln(1 + greatest(coalesce(pr.unit_price, 0), 0)) AS log_unit_price
    FROM products pr
    CROSS JOIN n CROSS JOIN nn
    LEFT JOIN buyers USING (product_id)
    LEFT JOIN q USING (product_id)
    LEFT JOIN newp USING (product_id)
)
SELECT
    CAST($snapshot AS DATE) AS snapshot, t.product_id, t.category, t.global_penetration, t.global_trend,
    t.global_new_penetration, t.log_unit_price,
    CAST(row_number() OVER (ORDER BY t.global_penetration DESC, t.global_new_penetration DESC,
                            t.product_id) AS INTEGER) AS global_rank,
    vc.code AS category_code
FROM prod t LEFT JOIN rk_vocab_category vc USING (category)
