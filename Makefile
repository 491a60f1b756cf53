# Openline: `make run` to start everything, `make test` for the whole suite.
# `make run` installs only what the product needs; test, lint, format and bench add the dev tools.
# Python 3.11 or newer: the first of python3.13, python3.12, python3.11, python3 that is at least
# 3.11 (or PYTHON=/path/to/python).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
RUNTIME_STAMP := $(VENV)/.synced-runtime
DEV_STAMP := $(VENV)/.synced-dev
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --inexact --python $(BIN)/python

.PHONY: run run-prod-like test lint format bench drills migrate demo setup setup-dev clean

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then \
		echo "Openline needs Python 3.11 or newer (3.11, 3.12 or 3.13); found: $$(python3 --version 2>&1 || echo no python3)."; \
		echo "Install one, or run make with PYTHON=/path/to/python3.11."; exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "Openline needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# What the product needs to run (no test or lint tools).
$(RUNTIME_STAMP): uv.lock pyproject.toml $(BIN)/uv
	$(SYNC) --no-dev
	touch $@

# The dev group too (pytest, Playwright, mypy, ruff, ...); it includes the runtime set.
$(DEV_STAMP): uv.lock pyproject.toml $(BIN)/uv
	$(SYNC)
	touch $@ $(RUNTIME_STAMP)

setup: $(RUNTIME_STAMP)

setup-dev: $(DEV_STAMP)

migrate: setup
	$(BIN)/python manage.py migrate --no-input

demo: migrate
	$(BIN)/python manage.py load_demo

run: demo
	$(BIN)/python manage.py serve

# Two web processes, a task worker and the messenger runner on the local PostgreSQL (database
# `openline`, created if missing) and Redis, DEBUG off; PROD_LIKE_ARGS="--ports 8000,8002 ...".
run-prod-like: setup
	$(BIN)/python manage.py run_prod_like $(PROD_LIKE_ARGS)

test: setup-dev
	$(BIN)/python -m pytest -n $${PYTEST_WORKERS:-3} --dist loadgroup $(PYTEST_ARGS)

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy openline
	$(BIN)/lint-imports

format: setup-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup-dev migrate
	$(BIN)/python -m bench $(BENCH_ARGS)

# Failure drills: kill web processes, workers and private PostgreSQL/Redis under load.
drills: setup-dev
	$(BIN)/python -m drills $(DRILLS_ARGS)

clean:
	rm -rf $(VENV) var/test-*.sqlite3*
