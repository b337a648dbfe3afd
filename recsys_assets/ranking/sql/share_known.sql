-- The tokens of rk_snap_token_share (ranking/basket_shares.py): (tid, j) for every menu token
-- numbered in rk_share_tids and every snapshot bucket j (snapshot_buckets.sql) at which it is known.
WITH {{snapshot_buckets}}
SELECT t.tid, s.j FROM rk_snap_token k JOIN rk_share_tids t USING (token) JOIN snaps s USING (snapshot)
