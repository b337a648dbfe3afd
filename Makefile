# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export RECSYS_HOME ?= $(CURDIR)/.recsys
export DAGSTER_HOME ?= $(RECSYS_HOME)/dagster
PYTEST_ARGS ?=

.PHONY: install demo test test-fast test-real-llm test-postgres-e2e lint ui mlflow-ui bench clean

$(STAMP): setup.py pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# `recsys demo` puts the project's instance settings (recsys_assets/dagster.yaml) into
# $(DAGSTER_HOME) itself; `make ui` does it first, so the UI and the CLI share one instance config.
demo: $(STAMP)
	$(BIN)/recsys demo

# Everything but the slow suites: against real CPU LLM servers (`make test-real-llm`, run by
# .ci/run after it has built the servers) and the PostgreSQL deployment (`make test-postgres-e2e`).
test: $(STAMP)
	$(BIN)/python -m pytest -m "not real_llm and not postgres_e2e" $(PYTEST_ARGS)

# The real_llm suite: llama-cpp-python's server and llama-server with a small GGUF model, built and
# cached by .ci/llm_servers.sh (skipped when not built, unless RECSYS_REAL_LLM_REQUIRED=1).
test-real-llm: $(STAMP)
	$(BIN)/python -m pytest -m real_llm $(PYTEST_ARGS)

# Everything but the end-to-end tests that start servers and a browser.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not real_llm and not postgres_e2e" $(PYTEST_ARGS)

# The multi-process deployment of deploy/ on a throwaway PostgreSQL cluster (~3-6 min; skips when
# no PostgreSQL server binaries are installed, .ci/run installs them).
test-postgres-e2e: $(STAMP)
	$(BIN)/python -m pytest -m postgres_e2e $(PYTEST_ARGS)

# Lint, formatting and types; what they check is configured in pyproject.toml.
LINT_PATHS := recsys_assets tests benchmarks
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

ui: $(STAMP)
	$(BIN)/python -m recsys_assets.instance
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

# The MLflow UI on the local store (runs, metrics, plots, the registry and its aliases).
mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(RECSYS_HOME)/mlflow.db

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(RECSYS_HOME)
