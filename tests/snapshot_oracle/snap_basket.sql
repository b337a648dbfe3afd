-- rk_snap_basket, one snapshot: each product's mean basket share (basket_shares.sql) among the
-- restaurants whose first window ended before the snapshot, each restaurant counting once.
WITH {{basket_shares}},
n AS (SELECT greatest(count(DISTINCT restaurant_id), 1) AS n FROM share)
SELECT CAST($snapshot AS DATE) AS snapshot, s.product_id, sum(s.share) / any_value(n.n) AS basket_share
FROM share s CROSS JOIN n
GROUP BY s.product_id
