-- rk_vocab_industry: industry -> industry_code, the position in the industry list the dataset was
-- built with (the taxonomy's order). The model stores this list; serving maps codes by name.
CREATE OR REPLACE TABLE rk_vocab_industry AS
SELECT v.industry, CAST(v.pos - 1 AS BIGINT) AS code
FROM unnest(CAST($industries AS VARCHAR[])) WITH ORDINALITY AS v(industry, pos)
