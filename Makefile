# Two commands do everything on a fresh machine: `make sweep` and `make test` (both run setup).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
# The CPU wheel of PyTorch that lies on this machine's disk. GPU users: make setup TORCH_SPEC="torch==2.13.0"
# PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128" (or any build of torch >= 2.4).
TORCH_SPEC ?= torch==2.13.0
PIP_ARGS ?=
ARGS ?=
PRESET ?= cpu
PORT ?= 5000
HOST ?= 127.0.0.1
# The store: $MLFLOW_TRACKING_URI when set, else experiments/tracking_store.py's default
# (results/mlflow.db of this checkout); the Python entry points resolve it, not make.
# Offline: no MLflow telemetry (the Python entry points also set these, experiments/offline.py).
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: setup smoke sweep report ui test test-fast bench bench-report lint clean distclean

setup: $(STAMP)

# Idempotent: rebuilt only when the dependency pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(PIP_ARGS) "$(TORCH_SPEC)" -c constraints.txt -e ".[dev]"
	touch $(STAMP)

smoke: setup
	$(PY) -m experiments.train --multirun sweep=smoke $(ARGS)

# PRESET may name several sweeps, run in order, stopping at the first that fails: a study's
# stages in one command (make sweep PRESET="imdb_study_tune imdb_study").
sweep: setup
	@set -e; for preset in $(PRESET); do \
	  echo "make sweep: sweep=$$preset"; \
	  $(PY) -m experiments.train --multirun sweep=$$preset $(ARGS); \
	done

report: setup
	$(PY) -m reports.build $(ARGS)

ui: setup
	$(PY) -m experiments.ui --tracking-uri "$(MLFLOW_TRACKING_URI)" --host $(HOST) --port $(PORT)

test: setup
	$(PY) -m pytest $(ARGS)

test-fast: setup
	$(PY) -m pytest -m "not e2e and not keras" $(ARGS)

bench: setup
	$(PY) -m experiments.bench $(ARGS)

bench-report: setup
	$(PY) -m experiments.report_bench $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf results/cache results/hydra results/bench results/report .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) results/mlflow.db results/artifacts
