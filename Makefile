# Two commands on a fresh machine: `make run` (demo app on :8501) and `make test` (every test).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: install run demo test test-fast services lint bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Build the demo warehouse and model if there is none, then serve the app.
run: $(STAMP)
	$(BIN)/vz demo --if-missing
	$(BIN)/vz serve --port $(PORT)

demo: $(STAMP)
	$(BIN)/vz demo --rebuild

## Local PostgreSQL on loopback and Debian's Chromium for the postgres and browser tests.
services:
	bash .ci/services.sh

test: $(STAMP) services
	set -a; [ -f var/test-services.env ] && . var/test-services.env; set +a; \
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core geo etl model jobs app pages cli.py streamlit_app.py

bench: $(STAMP)
	$(BIN)/python bench/etl.py
	$(BIN)/python bench/model.py
	$(BIN)/python bench/app.py

clean:
	rm -rf var/warehouse.sqlite* var/mlflow.sqlite var/mlartifacts var/demo
