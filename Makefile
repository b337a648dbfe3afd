# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export RECSYS_HOME ?= $(CURDIR)/.recsys
export DAGSTER_HOME ?= $(RECSYS_HOME)/dagster
PYTEST_ARGS ?=

.PHONY: install demo test test-heavy test-e2e test-fast test-real-llm test-postgres-e2e lint ui mlflow-ui bench clean

# The first install takes about 3-4 minutes on 2 cores (Dagster, MLflow, LightGBM, DuckDB, ...):
# a banner per phase, and pip names every package as it goes.
$(STAMP): setup.py pyproject.toml constraints.txt
	@echo "==> [1/2] Python environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/2] Installing recsys-assets and its dependencies into $(VENV):" \
	  "about 3-4 minutes the first time (pip lists each package below)"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on \
	  -c constraints.txt -e '.[dev]'
	@touch $(STAMP)
	@echo "==> Installed. The recsys command is $(BIN)/recsys"

install: $(STAMP)

# `recsys demo` puts the project's instance settings (recsys_assets/dagster.yaml) into
# $(DAGSTER_HOME) itself; `make ui` does it first, so the UI and the CLI share one instance config.
# It ends by saying how to put `recsys` on the PATH for the README's examples.
demo: $(STAMP)
	$(BIN)/recsys demo
	@echo ""
	@echo "The recsys command line is in $(BIN)/. To use it as the README does, in this shell:"
	@echo "    source $(BIN)/activate"

# Everything but the slow suites, each run by .ci/run through its own target: the end-to-end tests
# that start the Dagster webserver, daemon and Chromium (`make test-e2e`, ~2.5 min), the real CPU
# LLM servers (`make test-real-llm`) and the PostgreSQL deployment (`make test-postgres-e2e`).
# This keeps `make test` under 10 minutes on 2 cores (it ran 10.5-12 min with the e2e suite).
test: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not real_llm and not postgres_e2e and not heavy" $(PYTEST_ARGS)

# The longest integration tests (15-30 s each; ~1.5 min), split off so `make test` stays under
# 10 minutes on 2 cores; .ci/run runs them right after it.
test-heavy: $(STAMP)
	$(BIN)/python -m pytest -m heavy $(PYTEST_ARGS)

# The end-to-end suite: the real webserver and daemon started by PID, runs launched over GraphQL,
# schedules and sensors, kill -9 of a run worker, alerts, and the UI in headless Chromium.
test-e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

# The real_llm suite: llama-cpp-python's server and llama-server with a small GGUF model, built and
# cached by .ci/llm_servers.sh (skipped when not built, unless RECSYS_REAL_LLM_REQUIRED=1).
test-real-llm: $(STAMP)
	$(BIN)/python -m pytest -m real_llm $(PYTEST_ARGS)

# Kept for habit: the same selection as `make test`.
test-fast: test

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

# `dagster dev` warns that it is superseded by `dg dev`, which needs another package
# (dagster-dg-cli) and a dg project layout for the same webserver and daemon: that one warning
# is filtered, nothing else.
ui: $(STAMP)
	$(BIN)/python -m recsys_assets.instance
	PYTHONWARNINGS='ignore:Function `dev_command` is superseded:FutureWarning' \
	  $(BIN)/dagster dev -h 127.0.0.1 -p 3000

# The MLflow UI on the local store (runs, metrics, plots, the registry and its aliases). Each of
# its workers would print that starlette.middleware.wsgi (used by MLflow itself) is deprecated.
mlflow-ui: $(STAMP)
	PYTHONWARNINGS='ignore:starlette.middleware.wsgi is deprecated' \
	  $(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri sqlite:///$(RECSYS_HOME)/mlflow.db

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(RECSYS_HOME)
