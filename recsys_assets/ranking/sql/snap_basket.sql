-- rk_snap_basket, every snapshot at once: each product's mean basket share among the restaurants
-- whose first window ended before the snapshot, each restaurant counting once, computed by
-- ranking/basket_shares.py (rk_basket_means: bucket j, product number pid); here the snapshots and
-- product ids are put back.
WITH {{snapshot_buckets}}
SELECT s.snapshot, p.product_id, x.basket_share
FROM rk_basket_means x JOIN snaps s USING (j) JOIN pids p USING (pid)
ORDER BY snapshot  -- rows of one snapshot together: a candidate block reads one or two snapshots
