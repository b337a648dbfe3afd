-- Rank one baseline for every row of bl_q (restaurant_id, industry; menu tokens in bl_q_tok). The
-- baseline's own list (its primary query: restaurant_id, product_id, key; higher key first) comes first,
-- then, to the same depth for every method, its padding: industry first-window popularity,
-- industry popularity, global popularity (each only where the baseline pads with it; global always).
WITH prim AS (
{{primary}}
),
allc AS (
    SELECT restaurant_id, product_id, 0 AS prio, CAST(key AS DOUBLE) AS key FROM prim
    UNION ALL
    SELECT q.restaurant_id, i.product_id, 1, -i.new_rank FROM bl_q q JOIN bl_ind i USING (industry)
    WHERE $pad_new AND i.new_rank <= $depth
    UNION ALL
    SELECT q.restaurant_id, i.product_id, 2, -i.ind_rank FROM bl_q q JOIN bl_ind i USING (industry)
    WHERE $pad_ind AND i.ind_rank <= $depth
    UNION ALL
    SELECT q.restaurant_id, p.product_id, 3, -p.global_rank FROM bl_q q CROSS JOIN bl_prod p
    WHERE p.global_rank <= $depth
),
dedup AS (  -- each product once: from its first list (prio), with that list's best key
    SELECT restaurant_id, product_id, min(prio) AS prio,
           coalesce(max(key) FILTER (WHERE prio = 0), max(key) FILTER (WHERE prio = 1),
                    max(key) FILTER (WHERE prio = 2), max(key) FILTER (WHERE prio = 3)) AS key
    FROM allc GROUP BY restaurant_id, product_id
),
ranked AS (
    SELECT restaurant_id, product_id,
           CAST(row_number() OVER (PARTITION BY restaurant_id ORDER BY prio, key DESC, product_id)
                AS INTEGER) AS rank
    FROM dedup
)
SELECT restaurant_id, product_id, rank FROM ranked WHERE rank <= $depth
ORDER BY restaurant_id, rank
