from setuptools import find_packages, setup

setup(
    name="recsys-assets",
    version="0.1.0",
    description="Cold-start product recommendations for restaurants: LLM industry labeling, "
    "DuckDB industry-product tables and a LightGBM ranker, as Dagster assets.",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]),
    # The data files (taxonomy registry, lexicon variants, sample catalog) are part of the package.
    package_data={
        "recsys_assets": [
            "*.md",
            "**/*.md",
            "*.yaml",
            "**/*.yaml",
            "**/*.json",
            "data/*.csv",
            "data/*.yaml",
            "data/*.txt",
            "**/*.sql",
        ],
    },
    python_requires=">=3.11",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-duckdb==0.29.27",
        # PostgreSQL instance storage for the multi-process deployment (deploy/dagster.yaml).
        "dagster-postgres==0.29.27",
        "duckdb>=2.0,<2.1",
        "langchain>=1.4,<1.5",
        "langchain-core>=1.7,<1.8",
        "langchain-openai>=1.7,<1.8",
        "lightgbm>=4.7,<4.8",
        # The booster compiled to machine code for the `recommendations` batch (ranking/compiled.py);
        # lleaves 1.3 needs llvmlite's legacy pass manager, removed in llvmlite 0.45.
        "lleaves>=1.3,<1.4",
        "llvmlite>=0.44,<0.45",
        "mlflow>=3.17,<3.18",
        "pandas>=2.2,<4",
        "pyarrow>=15",
        "numpy>=1.26",
        # Sparse products for the basket-share snapshot tables (ranking/basket_shares.py).
        "scipy>=1.10",
        "pydantic>=2.7,<3",
        "PyYAML>=6.0,<7",
        "typer>=0.12",
        "rich>=13",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "tabulate>=0.9",
        "SQLAlchemy>=2.0,<2.2",
        "psycopg[binary]>=3.2,<4",
    ],
    extras_require={
        # The code location's image under Dagster's Helm chart (deploy/): run pods load the
        # instance, whose run launcher is dagster_k8s.K8sRunLauncher.
        "k8s": ["dagster-k8s==0.29.27"],
        "dev": [
            "dagster-k8s==0.29.27",  # tests/test_deploy_config.py checks the Helm values with it
            "pytest>=8",
            "pytest-timeout>=2.3",
            "PyYAML>=6",
            "selenium>=4.20",
            # `make lint` (exact versions in constraints.txt, so CI and laptops agree).
            "ruff>=0.17,<0.18",
            "mypy>=2.4,<2.5",
            "pandas-stubs",
            "types-PyYAML",
        ],
    },
    entry_points={"console_scripts": ["recsys=recsys_assets.cli:main"]},
)
