-- rk_queries: one row per restaurant that can be a query. Test = signed up on/after the cutoff with a
-- full window before the data end, reading the cutoff snapshot; train = signed up on/after the first
-- training snapshot with the window ending by the cutoff, reading the latest snapshot on/before its
-- sign-up. Industry = the newest label ($other when unlabeled), coded by rk_vocab_industry.
CREATE OR REPLACE TABLE rk_queries AS
WITH ri AS (
{{latest_labels}}
),
r AS (
    SELECT r.restaurant_id, r.signup_date, r.region, lower(r.size) AS size,
           coalesce(ri.industry, $other) AS industry,
           coalesce(ri.confidence, 0.0) AS label_confidence
    FROM restaurants r LEFT JOIN ri USING (restaurant_id)
),
tagged AS (
    SELECT r.*,
        CASE
          WHEN r.signup_date >= CAST($cutoff AS DATE)
               AND r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($data_end AS DATE)
            THEN 'test'
          WHEN r.signup_date >= list_min(CAST($train_snapshots AS DATE[]))
               AND r.signup_date + to_days(CAST($horizon_days AS INTEGER)) <= CAST($cutoff AS DATE)
            THEN 'train'
        END AS split
    FROM r
)
SELECT t.restaurant_id, t.signup_date, t.split,
       CASE WHEN t.split = 'test' THEN CAST($cutoff AS DATE)
            ELSE list_max(list_filter(CAST($train_snapshots AS DATE[]), lambda s: s <= t.signup_date))
       END AS snapshot,
       t.industry,
       coalesce(vi.code, (SELECT code FROM rk_vocab_industry WHERE industry = $other)) AS industry_code,
       t.label_confidence, vr.code AS region_code,
       CASE t.size WHEN 'small' THEN 0 WHEN 'medium' THEN 1 WHEN 'large' THEN 2 END AS size_ord
FROM tagged t
LEFT JOIN rk_vocab_industry vi USING (industry)
LEFT JOIN rk_vocab_region vr ON vr.region = t.region
WHERE t.split IS NOT NULL
