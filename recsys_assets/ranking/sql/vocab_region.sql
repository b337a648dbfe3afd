-- rk_vocab_region: restaurant region -> region_code (alphabetical, from 0).
CREATE OR REPLACE TABLE rk_vocab_region AS
SELECT region, CAST(row_number() OVER (ORDER BY region) - 1 AS INTEGER) AS code
FROM (SELECT DISTINCT region FROM restaurants WHERE region IS NOT NULL AND region <> '')
