-- The input of rk_snap_basket and rk_snap_token_share (ranking/basket_shares.py), every snapshot at
-- once: the quantity each restaurant ordered of each product per bucket of order time
-- (snapshot_buckets.sql), for the restaurants whose first window ended by some snapshot and who
-- bought in it (the base of rk_snap_token); a restaurant's earlier buckets are folded into the one
-- its window ended in (it counts from there on). Its running sums over the buckets are the
-- quantities ordered before each snapshot.
WITH {{snapshot_buckets}},
-- `base` is materialized first (at most one row per restaurant): as a SEMI JOIN inlined into the
-- join with the order lines, DuckDB built its hash table on the order lines (2.5x the CPU-s).
base AS MATERIALIZED (
    SELECT restaurant_id, rid, j AS j_end FROM ended
    WHERE restaurant_id IN (SELECT restaurant_id FROM rk_first_window)
)
SELECT b.rid, p.pid, CAST(greatest(s.j, b.j_end) AS INTEGER) AS j, sum(o.quantity) AS dq
FROM orders o JOIN base b USING (restaurant_id) JOIN pids p USING (product_id)
JOIN snaps s ON o.ordered_at >= s.after_ts AND o.ordered_at < s.before_ts
GROUP BY ALL
