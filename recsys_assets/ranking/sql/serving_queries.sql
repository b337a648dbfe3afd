-- rk_serving.all_queries: every serving request (rk_serving.requests, from restaurant_requests.sql)
-- as a row of the candidate-feature SQL's rk_queries, cleaned and coded exactly as the pyfunc does
-- one request: strings stripped ($ws = Python's whitespace) and empty as NULL, a NaN confidence as
-- none, rows without a valid industry taking the offline labeler's answer (rk_serving.labeled;
-- their own confidence wins when they have one), otherwise confidence 1.0 when absent; codes from
-- the model's vocabularies (ind_codes, region_codes, size_codes; $unknown for an unknown industry).
-- `seq` numbers the restaurants for scoring in blocks. rk_serving is the in-memory database
-- recommend.py attaches.
CREATE TABLE rk_serving.all_queries AS
WITH r AS (
    SELECT restaurant_id,
           nullif(trim(industry, $ws), '') AS industry,
           CASE WHEN isnan(label_confidence) THEN NULL ELSE label_confidence END AS conf,
           nullif(trim(region, $ws), '') AS region,
           lower(nullif(trim(size, $ws), '')) AS size
    FROM rk_serving.requests
),
j AS (
    SELECT r.restaurant_id, coalesce(l.industry, r.industry) AS industry,
           CASE WHEN l.restaurant_id IS NULL THEN coalesce(r.conf, 1.0)
                ELSE coalesce(r.conf, l.confidence) END AS label_confidence,
           r.region, r.size
    FROM r LEFT JOIN rk_serving.labeled l USING (restaurant_id)
)
SELECT j.restaurant_id, CAST($snapshot AS DATE) AS snapshot, j.industry,
       coalesce(ic.code, $unknown) AS industry_code, CAST(j.label_confidence AS DOUBLE) AS label_confidence,
       rc.code AS region_code, sc.code AS size_ord,
       row_number() OVER (ORDER BY j.restaurant_id) - 1 AS seq
FROM j
LEFT JOIN rk_serving.ind_codes ic ON ic.industry = j.industry
LEFT JOIN rk_serving.region_codes rc ON rc.region = j.region
LEFT JOIN rk_serving.size_codes sc ON sc.size = j.size
