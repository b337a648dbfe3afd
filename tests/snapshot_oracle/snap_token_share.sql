-- rk_snap_token_share, one snapshot: for each known menu token t (rk_snap_token) and product p, the
-- summed basket share of p (basket_shares.sql) over the restaurants with t on their menu, from
-- every order before the snapshot. Divided by n_t it is t's restaurants' mean basket share of p;
-- the features smooth it toward rk_snap_basket. Every pair is kept: a pair left out counts as a
-- share of 0, so dropping the rare ones (as rk_snap_token_prod does) would bias the mean down.
WITH {{basket_shares}},
tok AS (SELECT token FROM rk_snap_token WHERE snapshot = CAST($snapshot AS DATE))
SELECT CAST($snapshot AS DATE) AS snapshot, t.token, s.product_id, sum(s.share) AS share_sum
FROM rk_menu_tokens t JOIN tok USING (token) JOIN share s USING (restaurant_id)
GROUP BY t.token, s.product_id
