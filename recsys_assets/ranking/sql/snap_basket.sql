-- rk_snap_basket, every snapshot at once: each product's mean basket share (rk_basket_shares,
-- basket_shares.sql) among the restaurants whose first window ended before the snapshot, each
-- restaurant counting once.
WITH {{snapshot_buckets}},
n AS (
    SELECT j, greatest(count(DISTINCT rid), 1) AS n FROM rk_basket_shares GROUP BY j
),
summed AS (SELECT pid, j, sum(share) AS share FROM rk_basket_shares GROUP BY ALL)
SELECT s.snapshot, p.product_id, b.share / n.n AS basket_share
FROM summed b JOIN n USING (j) JOIN snaps s USING (j) JOIN pids p USING (pid)
ORDER BY snapshot  -- rows of one snapshot together: the candidate SQL reads one snapshot per block
