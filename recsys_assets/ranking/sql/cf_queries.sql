-- The queries of one candidate-feature run ({{queries}}: rk_queries or a block of it) with the
-- columns the features read, each numbered (rq, from 0) so that ranking/token_features.py pairs
-- candidates with menu tokens, and the features their query, by integer; their snapshots too
-- (si, from 0). One row per restaurant id.
SELECT restaurant_id, snapshot, industry, industry_code, label_confidence, region_code, size_ord,
       CAST(dense_rank() OVER (ORDER BY restaurant_id) - 1 AS INTEGER) AS rq,
       CAST(dense_rank() OVER (ORDER BY snapshot) - 1 AS INTEGER) AS si
FROM {{queries}}
