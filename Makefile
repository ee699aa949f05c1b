# Two commands on a fresh machine: `make run` (demo app on :8501) and `make test` (every test).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 8501

.PHONY: install install-dev run demo test test-fast services lint bench clean

## The runtime (what `make run` needs), then the test and lint tools on top.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

## Build the demo warehouse and model if there is none, then serve the app.
run: $(STAMP)
	$(BIN)/vz demo --if-missing
	$(BIN)/vz serve --port $(PORT)

demo: $(STAMP)
	$(BIN)/vz demo --rebuild

## Local PostgreSQL on loopback and Debian's Chromium for the postgres and browser tests.
services:
	bash .ci/services.sh

test: $(DEV_STAMP) services
	set -a; [ -f var/test-services.env ] && . var/test-services.env; set +a; \
	$(BIN)/python -m pytest

test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres"

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core geo etl model jobs app views cli.py streamlit_app.py
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python bench/etl.py
	$(BIN)/python bench/number_parsing.py
	$(BIN)/python bench/model.py
	$(BIN)/python bench/app.py

clean:
	rm -rf var/warehouse.sqlite* var/mlflow.sqlite var/mlartifacts var/demo
