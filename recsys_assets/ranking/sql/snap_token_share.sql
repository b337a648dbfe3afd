-- rk_snap_token_share, every snapshot at once: for each known menu token t (rk_snap_token) and
-- product p, the summed basket share of p (rk_basket_shares, basket_shares.sql) over the
-- restaurants with t on their menu, from every order before the snapshot. Divided by n_t it is t's
-- restaurants' mean basket share of p; the features smooth it toward rk_snap_basket. Every pair is
-- kept: a pair left out counts as a share of 0, so dropping the rare ones (as rk_snap_token_prod
-- does) would bias the mean down. Tokens are numbered (tid) so the large sum groups on integers.
WITH {{snapshot_buckets}},
tids AS (
    SELECT token, CAST(row_number() OVER (ORDER BY token) AS INTEGER) AS tid
    FROM (SELECT DISTINCT token FROM rk_snap_token)
),
known AS (
    SELECT t.tid, s.j FROM rk_snap_token k JOIN tids t USING (token) JOIN snaps s USING (snapshot)
),
menus AS (
    SELECT e.rid, t.tid FROM rk_menu_tokens m JOIN tids t USING (token) JOIN ended e USING (restaurant_id)
),
summed AS (
    SELECT m.tid, sh.pid, sh.j, sum(sh.share) AS share_sum
    FROM rk_basket_shares sh JOIN menus m USING (rid) JOIN known k USING (tid, j)
    GROUP BY ALL
)
SELECT s.snapshot, t.token, p.product_id, x.share_sum
FROM summed x JOIN snaps s USING (j) JOIN tids t USING (tid) JOIN pids p USING (pid)
ORDER BY snapshot  -- rows of one snapshot together: the candidate SQL reads one snapshot per block
