-- Per split: true first-window purchases found among the candidates, and all of them.
SELECT t.split, count(c.product_id), count(*)
FROM rk_truth t LEFT JOIN rk_candidates c
  ON c.restaurant_id = t.restaurant_id AND c.product_id = t.product_id
GROUP BY t.split
