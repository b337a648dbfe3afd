-- rk_snap_token, every snapshot at once ($snapshots): menu tokens known at the snapshot, with n_t =
-- how many restaurants whose first window ended by the snapshot (and who bought in it) have the
-- token on their menu (kept when frequent). Counted per bucket of window ends
-- (snapshot_buckets.sql), then summed over the buckets up to the snapshot.
WITH {{snapshot_buckets}},
tokbase AS (SELECT e.restaurant_id, e.j FROM ended e SEMI JOIN rk_first_window fw USING (restaurant_id)),
per_bucket AS (
    SELECT t.token, b.j, count(*) AS n
    FROM rk_menu_tokens t JOIN tokbase b USING (restaurant_id)
    GROUP BY ALL
),
counted AS (
    SELECT b.token, s.snapshot, CAST(sum(b.n) AS BIGINT) AS n_t
    FROM per_bucket b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
)
SELECT snapshot, token, n_t FROM counted WHERE n_t >= $token_min_support
ORDER BY snapshot  -- rows of one snapshot together: a candidate block reads one or two snapshots
