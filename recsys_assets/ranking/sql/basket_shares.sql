-- rk_basket_shares (a temporary work table of snap_basket.sql and snap_token_share.sql), every
-- snapshot at once: each restaurant's basket share of p at snapshot j (p's share of the quantity it
-- ordered before the snapshot: its whole history, not only its first window), for the restaurants
-- whose first window ended by the snapshot and who bought in it (the base of rk_snap_token).
-- Quantities are summed per bucket of order time, each restaurant's earlier buckets folded into the
-- one its window ended in, then summed up to every snapshot.
CREATE OR REPLACE TEMP TABLE rk_basket_shares AS
WITH {{snapshot_buckets}},
base AS (SELECT restaurant_id, rid, j AS j_end FROM ended SEMI JOIN rk_first_window USING (restaurant_id)),
rp_b AS (
    SELECT b.rid, p.pid, greatest(s.j, b.j_end) AS j, sum(o.quantity) AS dq
    FROM orders o JOIN base b USING (restaurant_id) JOIN pids p USING (product_id)
    JOIN snaps s ON o.ordered_at >= s.after_ts AND o.ordered_at < s.before_ts
    GROUP BY ALL
),
qty AS (
    SELECT b.rid, b.pid, s.j, sum(b.dq) AS qty
    FROM rp_b b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
),
r_b AS (SELECT rid, j, sum(dq) AS dq FROM rp_b GROUP BY ALL),
total AS (
    SELECT b.rid, s.j, sum(b.dq) AS total
    FROM r_b b JOIN snaps s ON s.j >= b.j
    GROUP BY ALL
)
SELECT q.rid, q.pid, q.j, q.qty / t.total AS share
FROM qty q JOIN total t USING (rid, j)
