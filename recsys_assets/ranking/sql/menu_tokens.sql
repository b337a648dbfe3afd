-- rk_menu_tokens: (restaurant, menu token) pairs; the tokens come from Python (dataset.menu_tokens),
-- registered as rk_menu_tokens_df, so training and serving tokenize with the same code.
CREATE OR REPLACE TABLE rk_menu_tokens AS SELECT DISTINCT restaurant_id, token FROM rk_menu_tokens_df
