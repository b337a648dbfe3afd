-- Known tokens of the run's snapshots, numbered (tid, from 1) so that the large joins compare
-- integers, not (snapshot, text) pairs; with the default lift d = $a / (n_t + $a) a token
-- contributes for a product it has no entry for, and its logarithm, once per token.
SELECT k.snapshot, k.token, k.n_t,
       CAST(row_number() OVER (ORDER BY k.snapshot, k.token) AS INTEGER) AS tid, s.si,
       $a / (k.n_t + $a) AS d, ln($a / (k.n_t + $a)) AS ln_d
FROM rk_snap_token k JOIN (SELECT DISTINCT snapshot, si FROM rk_cf_queries) s USING (snapshot)
