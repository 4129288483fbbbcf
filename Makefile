# The two commands that do everything on a fresh machine:
#   make demo   creates .venv, then runs the flywheel on the built-in testbed recipe (the shipped tiny model,
#               embedded Prefect, MLflow on SQLite, DuckDB file under ./work) and prints what it showed
#   make test   creates .venv, then runs ruff and the whole test suite on two workers
# (--no-compile: Python compiles each module when it is first imported instead; the install takes half as long)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

export PREFECT_SERVER_ANALYTICS_ENABLED = false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 90
export MLFLOW_DISABLE_TELEMETRY = true
export HF_HUB_OFFLINE = 1
export HF_HUB_DISABLE_TELEMETRY = 1

.PHONY: demo test lint install clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile torch==2.13.0
	$(BIN)/pip install --quiet --no-compile -c constraints.txt -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/treeflow demo --workdir work

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

clean:
	rm -rf work .pytest_cache .ruff_cache
