-- The per-snapshot SELECT of industry_product_stats before the all-snapshot rewrite (oracle).
WITH labeled AS (
        SELECT r.restaurant_id, ri.industry
        FROM restaurants r
        JOIN restaurant_industry ri USING (restaurant_id)
        WHERE r.signup_date < CAST($as_of AS TIMESTAMP)
    ),
    past_orders AS (
        SELECT o.restaurant_id, o.product_id, o.order_id, o.quantity, o.ordered_at
        FROM orders o
        WHERE o.ordered_at < CAST($as_of AS TIMESTAMP)
    ),
    industry_size AS (
        SELECT industry, count(*) AS industry_restaurants FROM labeled GROUP BY industry
    ),
    n_total AS (SELECT count(*) AS n FROM labeled),
    global_buyers AS (
        SELECT po.product_id, count(DISTINCT po.restaurant_id) AS global_buyers
        FROM past_orders po JOIN labeled l USING (restaurant_id)
        GROUP BY po.product_id
    ),
    per_pair AS (
        SELECT
            l.industry,
            po.product_id,
            count(DISTINCT po.restaurant_id) AS buyers,
            count(DISTINCT po.order_id) AS orders,
            sum(po.quantity) AS quantity,
            sum(
                po.quantity * exp(
                    -ln(2) * date_diff('second', po.ordered_at, CAST($as_of AS TIMESTAMP))
                    / 86400.0 / $half_life
                )
            ) AS recency_quantity
        FROM past_orders po JOIN labeled l USING (restaurant_id)
        GROUP BY l.industry, po.product_id
    )
    SELECT
        p.industry,
        p.product_id,
        p.buyers,
        s.industry_restaurants,
        p.buyers / s.industry_restaurants AS penetration,
        p.orders,
        p.quantity,
        g.global_buyers / n_total.n AS global_penetration,
        (p.buyers / s.industry_restaurants) / (g.global_buyers / n_total.n) AS lift,
        p.recency_quantity / s.industry_restaurants AS recency_score,
        (p.buyers + $smoothing * g.global_buyers / n_total.n)
            / (s.industry_restaurants + $smoothing) AS smoothed_penetration
    FROM per_pair p
    JOIN industry_size s USING (industry)
    JOIN global_buyers g USING (product_id)
    CROSS JOIN n_total
