-- rk_vocab_category: product category -> category_code (alphabetical, from 0).
CREATE OR REPLACE TABLE rk_vocab_category AS
SELECT category, CAST(row_number() OVER (ORDER BY category) - 1 AS INTEGER) AS code
FROM (SELECT DISTINCT category FROM products WHERE category IS NOT NULL)
