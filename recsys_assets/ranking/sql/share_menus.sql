-- The menus of rk_snap_token_share (ranking/basket_shares.py): (rid, tid) for every restaurant of
-- `ended` (snapshot_buckets.sql) and every menu token numbered in rk_share_tids.
WITH {{snapshot_buckets}}
SELECT e.rid, t.tid FROM rk_menu_tokens m JOIN rk_share_tids t USING (token) JOIN ended e USING (restaurant_id)
