-- rk_snap_token_prod, every snapshot at once ($snapshots): menu token <-> product association. Among
-- restaurants whose first window ended by the snapshot, lift = P(bought p in the first window | menu
-- has t) / P(bought p in the first window), with P(p | t) smoothed toward P(p). First-window
-- purchases (not "ever bought") because long-lived restaurants eventually buy almost everything,
-- which flattens the lift toward 1. Counted per bucket of window ends (snapshot_buckets.sql) and
-- summed over the buckets up to the snapshot; reads rk_snap_token (the tokens known at each).
WITH {{snapshot_buckets}},
tokbase AS (SELECT e.restaurant_id, e.j FROM ended e SEMI JOIN rk_first_window fw USING (restaurant_id)),
n_b AS (SELECT j, count(*) AS n FROM tokbase GROUP BY j),
n AS (
    SELECT s.snapshot, CAST(sum(b.n) AS BIGINT) AS n FROM n_b b JOIN snaps s ON s.j >= b.j GROUP BY ALL
),
bought AS (
    SELECT fw.restaurant_id, fw.product_id, fw.quantity, b.j FROM rk_first_window fw
    JOIN tokbase b USING (restaurant_id)
),
pb_b AS (SELECT p.pid, b.j, count(*) AS b FROM bought b JOIN pids p USING (product_id) GROUP BY ALL),
-- P(p) per snapshot: its first-window buyers over the base `n`.
pb AS (
    SELECT x.pid, x.snapshot, x.b, n.n
    FROM (
        SELECT b.pid, s.snapshot, CAST(sum(b.b) AS BIGINT) AS b
        FROM pb_b b JOIN snaps s ON s.j >= b.j
        GROUP BY ALL
    ) x JOIN n USING (snapshot)
),
-- Tokens known at some snapshot (numbered: the large sums group on integers); a restaurant
-- counts toward every later snapshot too.
tids AS (
    SELECT token, CAST(row_number() OVER (ORDER BY token) AS INTEGER) AS tid
    FROM (SELECT DISTINCT token FROM rk_snap_token)
),
tok AS (SELECT t.tid, k.snapshot, k.n_t FROM rk_snap_token k JOIN tids t USING (token)),
pairs_b AS (
    SELECT t.tid, p.pid, b.j, count(*) AS b_tp, sum(b.quantity) AS q_tp
    FROM rk_menu_tokens m JOIN tids t USING (token)
    JOIN bought b ON b.restaurant_id = m.restaurant_id
    JOIN pids p ON p.product_id = b.product_id
    GROUP BY ALL
),
-- The running sums over each pair's buckets (a window), each spread over the snapshots from its
-- bucket to the pair's next one: the same rows as joining every bucket to every later snapshot and
-- grouping (3.3M rows into 1.1M groups at medium; the statement 1.4 -> 1.0 CPU-s).
pairs AS (
    SELECT c.tid, c.pid, s.snapshot, c.b_tp, c.q_tp
    FROM (
        SELECT tid, pid, j,
               CAST(sum(b_tp) OVER w AS BIGINT) AS b_tp, sum(q_tp) OVER w AS q_tp,
               coalesce(lead(j) OVER (PARTITION BY tid, pid ORDER BY j), 2147483647) AS j_next
        FROM pairs_b
        WINDOW w AS (PARTITION BY tid, pid ORDER BY j ROWS UNBOUNDED PRECEDING)
    ) c JOIN snaps s ON s.j >= c.j AND s.j < c.j_next
    WHERE c.b_tp >= $token_min_pair
),
-- Every join on integer ids and the snapshot, the names put back last: joined on names that a
-- subquery maps back, the planner matched the pairs to every product of their snapshot first
-- (54M intermediate rows and 4 GiB at the small scale).
scored AS (
    SELECT pairs.snapshot, pairs.tid, pairs.pid, pairs.b_tp,
           ((pairs.b_tp + $token_smoothing * pb.b / pb.n) / (tok.n_t + $token_smoothing))
               / (pb.b / pb.n) AS lift,
           (pairs.b_tp + $token_smoothing * pb.b / pb.n) / (tok.n_t + $token_smoothing) AS pen,
           pairs.q_tp / tok.n_t AS qty
    FROM pairs
    JOIN tok USING (snapshot, tid)
    JOIN pb USING (snapshot, pid)
),
named AS (
    SELECT s.snapshot, t.token, p.product_id, s.b_tp, s.lift, s.pen, s.qty
    FROM scored s JOIN tids t USING (tid) JOIN pids p USING (pid)
)
SELECT
    snapshot, token, product_id, b_tp, lift, pen, qty,
    CAST(row_number() OVER (PARTITION BY snapshot, token ORDER BY lift DESC, b_tp DESC, product_id)
        AS INTEGER) AS token_rank
FROM named
ORDER BY snapshot  -- rows of one snapshot together: a candidate block reads one or two snapshots
