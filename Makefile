# The two commands: `make run` (local stack) and `make test` (every test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench chaos deploy deploy-plan check-tools clean

# Progress: one line per package pip collects (the first install takes a minute or two).
PIP_PROGRESS := { grep --line-buffered -E '^(Collecting|Successfully installed)' | cut -c1-120 || true; }

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || { echo "creating $(VENV) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "installing the pinned requirements into $(VENV) (a minute or two the first time) ..."
	@set -o pipefail; $(PY) -m pip install --disable-pip-version-check --upgrade pip | $(PIP_PROGRESS)
	@set -o pipefail; $(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt | $(PIP_PROGRESS)
	@set -o pipefail; $(PY) -m pip install --disable-pip-version-check --no-deps -e . | $(PIP_PROGRESS)
	@touch $(STAMP)
	@echo "$(VENV) is ready"

check-tools:
	@command -v gcloud >/dev/null || { echo "error: gcloud (Google Cloud CLI) is not on PATH; install it with its Firestore and Pub/Sub emulators" >&2; exit 1; }
	@command -v java >/dev/null || { echo "error: java is not on PATH; the emulators need a Java 11+ runtime" >&2; exit 1; }

# make run [DATA=.stack/data]: with DATA, the data of the last run is imported at start and
# exported again on exit (Ctrl-C).
run: $(STAMP) check-tools
	$(PY) -m devstack run $(if $(DATA),--data $(DATA))

# The lint runs first (about 25 s of CPU on a cold cache): CI is `make test` in a fresh clone.
test: $(STAMP) check-tools lint
	$(PY) -m pytest

# The pure tier: every test that needs no emulator and starts no process (no Java, no gcloud).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not emulator and not process"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared functions devstack bench

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) check-tools
	$(PY) -m bench

# The seeded randomized fault run, larger than in make test: make chaos N=10000 [SEED=7]
# (docs/local-stack.md: 43 min on a busy 2-core machine; the default N is 2000).
chaos: $(STAMP) check-tools
	CHAOS_N=$(or $(N),2000) CHAOS_SEED=$(or $(SEED),20260104) $(PY) -m pytest tests/chaos -q --timeout=0
	@cat build/reports/chaos.json

# Deploy one app: its registered functions, topics, schedules, rules, indexes and TTL policy.
deploy: $(STAMP)
	@test -n "$(PROJECT)" && test -n "$(REGION)" && test -n "$(PROFILE)" || { echo "usage: make deploy PROJECT=<id> REGION=<region> PROFILE=kitesforu|bigeye|kaiwa [FIRESTORE_LOCATION=nam5]" >&2; exit 2; }
	$(PY) -m devstack.deploy --project $(PROJECT) --region $(REGION) --profile $(PROFILE) $(if $(FIRESTORE_LOCATION),--firestore-location $(FIRESTORE_LOCATION)) --execute

# Print every deploy command of one app without running anything (no credentials needed).
deploy-plan: $(STAMP)
	@test -n "$(PROFILE)" || { echo "usage: make deploy-plan PROFILE=kitesforu|bigeye|kaiwa [PROJECT=<id>] [REGION=<region>]" >&2; exit 2; }
	@$(PY) -m devstack.deploy --project $(or $(PROJECT),my-project) --region $(or $(REGION),us-central1) --profile $(PROFILE) $(if $(FIRESTORE_LOCATION),--firestore-location $(FIRESTORE_LOCATION))

clean:
	rm -rf $(VENV) .stack build .pytest_cache .mypy_cache .ruff_cache
