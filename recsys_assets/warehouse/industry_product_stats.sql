-- The industry x product statistics as of each timestamp of $as_of (a sorted list): per (as_of,
-- industry, product) what the restaurants signed up before as_of, by their industry label, bought in
-- orders placed before as_of. industry_product_stats is this with one as_of (now); the ranking's
-- rk_snap_ind_prod is it at every snapshot. One pass over the orders for all of them: each event (a
-- sign-up, a restaurant's first purchase of a product, an order's first line of a product, an order
-- line) goes to the first as_of it counts for (`bucket` j), is summed per bucket, and the sums of
-- the buckets up to each as_of give its counts. Count-distincts become counts of first
-- occurrences. The recency weight 2^(-age / half-life) factors as 2^(-(ref - ordered_at)/h) (summed
-- per bucket, <= 1) times 2^((ref - as_of)/h), with ref the last as_of, so one as_of is the plain sum.
WITH snaps AS (  -- bucket j holds the events at or after the previous as_of and before this one
    SELECT s AS as_of, CAST(j AS INTEGER) AS j,
           coalesce(lag(s) OVER (ORDER BY s), TIMESTAMP '-infinity') AS after
    FROM (SELECT unnest(CAST($as_of AS TIMESTAMP[])) AS s,
                 generate_subscripts(CAST($as_of AS TIMESTAMP[]), 1) AS j)
),
ref AS (SELECT max(as_of) AS ref FROM snaps),
-- A restaurant counts once per label row (the join the statistics are defined by); m = label rows.
labeled AS (
    SELECT r.restaurant_id, ri.industry, CAST(r.signup_date AS TIMESTAMP) AS since, count(*) AS m
    FROM restaurants r JOIN restaurant_industry ri USING (restaurant_id)
    GROUP BY ALL
),
size_b AS (
    SELECT l.industry, s.j, sum(l.m) AS n
    FROM labeled l JOIN snaps s ON l.since >= s.after AND l.since < s.as_of
    GROUP BY ALL
),
-- A value summed per bucket b counts for every as_of from b on: the join on s.j >= b.j.
industry_size AS (
    SELECT b.industry, s.j, CAST(sum(b.n) AS BIGINT) AS industry_restaurants
    FROM size_b b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
),
n_total AS (SELECT j, sum(industry_restaurants) AS n FROM industry_size GROUP BY j),
lines AS NOT MATERIALIZED (
    SELECT l.industry, o.restaurant_id, o.product_id, o.order_id, o.quantity * l.m AS quantity,
           o.ordered_at, greatest(l.since, o.ordered_at) AS t
    FROM orders o JOIN labeled l USING (restaurant_id)
),
-- When each restaurant first bought each product; a buyer counts from greatest(sign-up, that).
first_buys AS (
    SELECT restaurant_id, product_id, min(ordered_at) AS first_at FROM orders GROUP BY ALL
),
-- (industry, product, restaurant) and (industry, product, order): first occurrences.
firsts AS (
    SELECT l.industry, fb.product_id, 'b' AS kind, greatest(l.since, fb.first_at) AS t
    FROM first_buys fb JOIN labeled l USING (restaurant_id)
    UNION ALL
    SELECT industry, product_id, 'o' AS kind, min(t) AS t FROM lines
    GROUP BY industry, product_id, order_id
),
pair_b AS (
    SELECT f.industry, f.product_id, s.j,
           count(*) FILTER (WHERE f.kind = 'b') AS buyers, count(*) FILTER (WHERE f.kind = 'o') AS orders,
           0.0 AS quantity, 0.0 AS recency_ref
    FROM firsts f JOIN snaps s ON f.t >= s.after AND f.t < s.as_of
    GROUP BY ALL
    UNION ALL
    SELECT x.industry, x.product_id, s.j, 0 AS buyers, 0 AS orders, sum(x.quantity) AS quantity,
           sum(x.quantity * exp(
               -ln(2) * date_diff('second', x.ordered_at, ref.ref) / 86400.0 / $half_life
           )) AS recency_ref
    FROM lines x JOIN snaps s ON x.t >= s.after AND x.t < s.as_of CROSS JOIN ref
    GROUP BY ALL
),
-- Global buyers: a restaurant with any label counts once per product, from its first purchase.
global_b AS (
    SELECT f.product_id, s.j, count(*) AS n
    FROM (
        SELECT fb.product_id, greatest(r.since, fb.first_at) AS t
        FROM first_buys fb JOIN (SELECT DISTINCT restaurant_id, since FROM labeled) r USING (restaurant_id)
    ) f JOIN snaps s ON f.t >= s.after AND f.t < s.as_of
    GROUP BY ALL
),
global_buyers AS (
    SELECT b.product_id, s.j, CAST(sum(b.n) AS BIGINT) AS global_buyers
    FROM global_b b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
),
-- Every (as_of, industry, product) with an order line before as_of.
per_pair AS (
    SELECT b.industry, b.product_id, s.j,
           CAST(sum(b.buyers) AS BIGINT) AS buyers, CAST(sum(b.orders) AS BIGINT) AS orders,
           sum(b.quantity) AS quantity, sum(b.recency_ref) AS recency_ref
    FROM pair_b b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
),
sized AS (
    SELECT p.*, sn.as_of, s.industry_restaurants, g.global_buyers, CAST(n_total.n AS BIGINT) AS n,
           p.recency_ref * exp(
               -ln(2) * date_diff('second', ref.ref, sn.as_of) / 86400.0 / $half_life
           ) AS recency_quantity
    FROM per_pair p
    JOIN snaps sn USING (j)
    JOIN industry_size s USING (industry, j)
    JOIN global_buyers g USING (product_id, j)
    JOIN n_total USING (j)
    CROSS JOIN ref
)
SELECT
    p.as_of,
    p.industry,
    p.product_id,
    p.buyers,
    p.industry_restaurants,
    p.buyers / p.industry_restaurants AS penetration,
    p.orders,
    p.quantity,
    p.global_buyers / p.n AS global_penetration,
    (p.buyers / p.industry_restaurants) / (p.global_buyers / p.n) AS lift,
    p.recency_quantity / p.industry_restaurants AS recency_score,
    (p.buyers + $smoothing * p.global_buyers / p.n)
        / (p.industry_restaurants + $smoothing) AS smoothed_penetration
FROM sized p
