-- The known tokens of each query (rq, tid): its menu words that are known tokens, and for a word
-- that is not, the longest known token(s) it contains (at least $contain_min_len characters): a
-- dish written the house way (특김치찌개, 김치찌개정식) keeps its dish's evidence. The containment is
-- mapped once per distinct (snapshot, word), not per restaurant.
WITH qt0 AS (
    SELECT q.rq, q.snapshot, t.token
    FROM rk_cf_queries q JOIN rk_menu_tokens t USING (restaurant_id)
),
inside AS (
    SELECT snapshot, token, tid FROM (
        SELECT u.snapshot, u.token, k.tid,
               length(k.token) = max(length(k.token)) OVER (PARTITION BY u.snapshot, u.token)
                   AS longest
        FROM (SELECT DISTINCT snapshot, token FROM qt0) u
        JOIN rk_cf_known k ON k.snapshot = u.snapshot AND length(k.token) >= $contain_min_len
         AND length(u.token) > length(k.token) AND contains(u.token, k.token)
    ) WHERE longest
)
SELECT qt0.rq, k.tid FROM qt0 JOIN rk_cf_known k USING (snapshot, token)
UNION
SELECT qt0.rq, i.tid FROM qt0 JOIN inside i USING (snapshot, token)
