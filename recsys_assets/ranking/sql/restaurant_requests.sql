-- Serving requests for the restaurants of the warehouse (all of them, or the ids in $ids), with
-- their newest industry label, in the columns the pyfunc model takes.
WITH ri AS (
{{latest_labels}}
)
SELECT r.restaurant_id, ri.industry, r.name, r.menu, r.description, r.region, r.size,
       ri.confidence AS label_confidence
FROM restaurants r LEFT JOIN ri USING (restaurant_id)
WHERE CAST($ids AS VARCHAR[]) IS NULL OR list_contains(CAST($ids AS VARCHAR[]), r.restaurant_id)
ORDER BY r.restaurant_id
