-- rk_snap_token, one snapshot: menu tokens known at the snapshot, with n_t = how many restaurants
-- whose first window ended before the snapshot have the token on their menu (kept when frequent).
WITH tokbase AS (
    SELECT DISTINCT fw.restaurant_id
    FROM rk_first_window fw JOIN restaurants r USING (restaurant_id)
    WHERE r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($snapshot AS DATE)
)
SELECT CAST($snapshot AS DATE) AS snapshot, t.token, count(*) AS n_t
FROM rk_menu_tokens t JOIN tokbase USING (restaurant_id)
GROUP BY t.token HAVING count(*) >= $token_min_support
