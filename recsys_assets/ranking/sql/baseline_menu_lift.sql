-- menu_token_association's lifts as logarithms (taken in DuckDB, as its former SQL took them).
SELECT token, product_id, ln(lift) AS ll FROM bl_token_prod
