-- bl_token_prod (baselines), one snapshot: the menu-token association list, token -> products it
-- lifts (rk_snap_token_prod: first-window purchases of restaurants with the token on their menu).
SELECT token, product_id, lift FROM rk_snap_token_prod
WHERE snapshot = CAST($snapshot AS DATE) AND lift > 1
