-- Common table expressions (a fragment of the snap_*.sql files that build every snapshot at once):
-- `snaps`, the snapshots of $snapshots numbered j = 1, 2, ... in date order (bucket j: from just
-- after the previous snapshot to this one; `after_ts`/`before_ts` bound the orders placed in it);
-- `ended`, each restaurant with the bucket of the first snapshot on/after the end of its first
-- window (signup + $horizon_days): it counts from there on (`rid` numbers them). A value summed per bucket gives every
-- snapshot's total by joining the buckets up to it (`JOIN snaps s ON s.j >= b.j`); `pids` numbers
-- the products so those sums group on integers.
snaps AS (
    SELECT s AS snapshot, CAST(j AS INTEGER) AS j,
           coalesce(lag(s) OVER (ORDER BY s), DATE '-infinity') AS after,
           CAST(coalesce(lag(s) OVER (ORDER BY s), DATE '-infinity') AS TIMESTAMP) AS after_ts,
           CAST(s AS TIMESTAMP) AS before_ts
    FROM (SELECT unnest(CAST($snapshots AS DATE[])) AS s,
                 generate_subscripts(CAST($snapshots AS DATE[]), 1) AS j)
),
ended AS (
    SELECT r.restaurant_id, s.j, CAST(row_number() OVER (ORDER BY r.restaurant_id) AS INTEGER) AS rid
    FROM restaurants r
    JOIN snaps s ON r.signup_date + to_days(CAST($horizon_days AS INTEGER)) > s.after
     AND r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= s.snapshot
),
pids AS (SELECT product_id, CAST(row_number() OVER (ORDER BY product_id) AS INTEGER) AS pid FROM products)
