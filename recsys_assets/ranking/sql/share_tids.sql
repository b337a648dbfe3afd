-- rk_share_tids (a temporary table of ranking/basket_shares.py): the menu tokens known at some
-- snapshot (rk_snap_token), numbered so that the shares are summed on integers.
CREATE OR REPLACE TEMP TABLE rk_share_tids AS
SELECT token, CAST(row_number() OVER (ORDER BY token) AS INTEGER) AS tid
FROM (SELECT DISTINCT token FROM rk_snap_token)
