-- The products of the run's snapshots, numbered (pc, from 0): the candidates and the token x
-- product statistics meet on this integer in numpy. A candidate not in rk_snap_prod of its
-- snapshot gets no feature row (candidate_features.sql joins rk_snap_prod), so no code is missed.
SELECT product_id, CAST(row_number() OVER (ORDER BY product_id) - 1 AS INTEGER) AS pc
FROM (
    SELECT DISTINCT product_id FROM rk_snap_prod
    WHERE snapshot IN (SELECT DISTINCT snapshot FROM rk_cf_queries)
)
