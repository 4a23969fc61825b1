# The two commands: `make run` (local stack) and `make test` (every test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench chaos deploy deploy-plan check-tools clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

check-tools:
	@command -v gcloud >/dev/null || { echo "error: gcloud (Google Cloud CLI) is not on PATH; install it with its Firestore and Pub/Sub emulators" >&2; exit 1; }
	@command -v java >/dev/null || { echo "error: java is not on PATH; the emulators need a Java 11+ runtime" >&2; exit 1; }

run: $(STAMP) check-tools
	$(PY) -m devstack run

test: $(STAMP) check-tools
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared functions devstack bench

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) check-tools
	$(PY) -m bench

clean:
	rm -rf $(VENV) .stack build .pytest_cache .mypy_cache .ruff_cache
