-- The token x product statistics of the tokens the run's queries know, both tables as one (their
-- full outer join) with the defaults filled in: what a (query, candidate, token) row takes when
-- the pair has no entry (lift d, ln d, no penetration, quantity or share).
WITH used AS (
    SELECT * FROM rk_cf_known WHERE tid IN (SELECT tid FROM rk_cf_query_tokens)
),
tpk AS (
    SELECT k.tid, tp.product_id, tp.lift, ln(tp.lift) AS ln_lift, tp.pen, tp.qty
    FROM used k JOIN rk_snap_token_prod tp USING (snapshot, token)
),
tsk AS (
    SELECT k.tid, ts.product_id, ts.share_sum
    FROM used k JOIN rk_snap_token_share ts USING (snapshot, token)
)
SELECT tps.tid, p.pc,
       coalesce(tps.lift, k.d) AS lift, coalesce(tps.ln_lift, k.ln_d) AS ln_lift,
       coalesce(tps.pen, 0.0) AS pen, coalesce(tps.qty, 0.0) AS qty,
       coalesce(tps.share_sum, 0.0) AS share_sum
FROM (SELECT * FROM tpk FULL JOIN tsk USING (tid, product_id)) tps
JOIN used k USING (tid)
JOIN rk_cf_products p USING (product_id)
