-- rk_snap_token_share, every snapshot at once: for each known menu token t (rk_snap_token) and
-- product p, the summed basket share of p over the restaurants with t on their menu, from every
-- order before the snapshot. Divided by n_t it is t's restaurants' mean basket share of p; the
-- features smooth it toward rk_snap_basket. Every pair is kept: a pair left out counts as a share
-- of 0, so dropping the rare ones (as rk_snap_token_prod does) would bias the mean down. The sums
-- come from ranking/basket_shares.py (rk_token_share_sums: bucket j, token number tid, product
-- number pid); here the snapshots, tokens and product ids are put back.
WITH {{snapshot_buckets}}
SELECT s.snapshot, t.token, p.product_id, x.share_sum
FROM rk_token_share_sums x JOIN snaps s USING (j) JOIN rk_share_tids t USING (tid) JOIN pids p USING (pid)
ORDER BY snapshot  -- rows of one snapshot together: a candidate block reads one or two snapshots
