-- bl_prod (baselines), one snapshot: global popularity order and first-window penetration.
SELECT product_id, global_rank, global_new_penetration
FROM rk_snap_prod WHERE snapshot = CAST($snapshot AS DATE)
