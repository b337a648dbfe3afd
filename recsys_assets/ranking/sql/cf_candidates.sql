-- The candidates of each query: its industry's top $n_ind products, the global top $n_glob, and
-- the top $n_tok products of each of its known tokens (rk_cf_query_tokens); with `g`, the
-- product's basket share among all earlier restaurants (rk_snap_basket, their whole order
-- history), and the integer codes the token aggregates use (rq, si, pc).
WITH cand AS (
    SELECT q.rq, ip.product_id FROM rk_cf_queries q
    JOIN rk_snap_ind_prod ip ON ip.snapshot = q.snapshot AND ip.industry = q.industry
    WHERE ip.ind_rank <= $n_ind
    UNION
    SELECT q.rq, gp.product_id FROM rk_cf_queries q
    JOIN rk_snap_prod gp ON gp.snapshot = q.snapshot
    WHERE gp.global_rank <= $n_glob
    UNION
    SELECT qt.rq, tp.product_id FROM rk_cf_query_tokens qt
    JOIN rk_cf_known k USING (tid)
    JOIN rk_snap_token_prod tp USING (snapshot, token)
    WHERE tp.token_rank <= $n_tok
)
SELECT q.restaurant_id, c.product_id, c.rq, q.si, p.pc, coalesce(b.basket_share, 0.0) AS g
FROM cand c JOIN rk_cf_queries q USING (rq)
JOIN rk_cf_products p USING (product_id)
LEFT JOIN rk_snap_basket b ON b.snapshot = q.snapshot AND b.product_id = c.product_id
