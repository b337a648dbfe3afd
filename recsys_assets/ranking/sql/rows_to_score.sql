-- The rows a rebuild scores with its new challenger: the holdout's candidates, and (once it is
-- champion) about as many candidates per restaurant for every restaurant `recommendations` serves.
-- ranker_model compiles the booster (ranking/compiled.py) only when these rows repay the compile.
SELECT count(*)
       + count(*) / greatest(count(DISTINCT restaurant_id), 1) * (SELECT count(*) FROM restaurants)
       AS n_rows
FROM rk_candidates
WHERE split = 'test'
