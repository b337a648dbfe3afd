-- The industry label of each restaurant: the newest one, if restaurant_industry keeps a history.
SELECT restaurant_id, industry, confidence FROM restaurant_industry
QUALIFY row_number() OVER (PARTITION BY restaurant_id
                           ORDER BY labeled_at DESC NULLS LAST, confidence DESC) = 1
