-- bl_knn_tok (baselines): TF-IDF menu vectors of the kNN pool, L2-normalised (binary tf). Tokens on
-- a single menu or on most menus are dropped: they match nothing or everything, and cost joins.
WITH pool AS ({{knn_pool}}),
n AS (SELECT count(*) AS n FROM pool),
t AS (SELECT t.restaurant_id, t.token FROM rk_menu_tokens t JOIN pool USING (restaurant_id)),
df AS (SELECT token, count(*) AS df FROM t GROUP BY token),
idf AS (
    SELECT df.token, ln(n.n / df.df) AS idf FROM df CROSS JOIN n
    WHERE df.df >= 2 AND df.df <= $knn_max_df * n.n
)
SELECT t.restaurant_id, t.token, idf.idf,
       idf.idf / sqrt(sum(idf.idf * idf.idf) OVER (PARTITION BY t.restaurant_id)) AS w
FROM t JOIN idf USING (token)
