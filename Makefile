# Every gate has one target; CI runs `make test` exactly as a developer does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup lint format typecheck test synth bench contracts run demo clean

help:
	@echo "make demo       run a whole campaign on the local cloud"
	@echo "make test       lint, type-check and run every test"
	@echo "make run        the local cloud until Ctrl-C"
	@echo "make synth      synthesize the CDK app into cdk.out/"
	@echo "make bench      measure and record benchmark figures"
	@echo "make contracts  regenerate events/*.schema.json and events/openapi.json"

# The venv is rebuilt whenever pyproject.toml changes (the stamp carries its hash).
$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[infra,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(INSTALLED)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup
	$(BIN)/mypy functions infra cli tests

test: lint typecheck
	$(BIN)/python -m infra.build
	$(BIN)/pytest -q tests

synth: setup
	$(BIN)/python -m infra.build
	rm -rf cdk.out
	$(BIN)/python infra/app.py
	@echo "cdk.out/ written"

bench: setup
	$(BIN)/python -m infra.build
	$(BIN)/python -m tests.bench

contracts: setup
	$(BIN)/rebates contracts generate

# Both synthesize the app (building its assets) before deploying it into moto.
run: setup
	$(BIN)/python -m infra.local

demo: setup
	$(BIN)/python -m infra.local.demo

clean:
	rm -rf cdk.out .build .local .mypy_cache .pytest_cache .ruff_cache
