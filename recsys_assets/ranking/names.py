"""The registered model's name and aliases: defined once, importable without MLflow or DuckDB.

`recommend` (the CLI's fast path, which must not import MLflow) and `registry` both read these.
"""

EXPERIMENT_NAME = "recsys-industry-ranker"
MODEL_NAME = "industry-product-ranker"
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
