# Every gate has one target; CI runs `make test` exactly as a developer does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# The CDK CLI pinned in package-lock.json (2.x: npm's `latest` cannot read aws-cdk-lib
# 2.275's cloud assembly); reinstalled whenever the lock changes, like the venv.
NODE_INSTALLED := node_modules/.installed-$(shell sha1sum package-lock.json | cut -c1-12)
CDK := node_modules/.bin/cdk
# The app is cdk.json's "app"; CDK_ARGS passes more flags, e.g. CDK_ARGS=--force to destroy.
CDK_ARGS ?=

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1
# The pinned CLI is the one we want: no nagging to upgrade it, no usage data sent.
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: help setup node browser lint format typecheck test synth bench contracts run demo clean \
	aws-credentials bootstrap diff deploy destroy

help:
	@echo "make demo       run a whole campaign on the local cloud"
	@echo "make test       lint, type-check and run every test"
	@echo "make run        the local cloud until Ctrl-C"
	@echo "make synth      synthesize the CDK app into cdk.out/"
	@echo "make bench      measure and record benchmark figures"
	@echo "make contracts  regenerate events/*.schema.json and events/openapi.json"
	@echo "make bootstrap  once per account and region: the CDK's staging bucket and roles"
	@echo "make diff       what make deploy would change in the AWS account (AWS_PROFILE)"
	@echo "make deploy     the stack into the AWS account, with the pinned CDK CLI"
	@echo "make destroy    delete the deployed stack (buckets and some resources are kept)"

# The venv is rebuilt whenever pyproject.toml changes (the stamp carries its hash).
$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[infra,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(INSTALLED)

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node: $(NODE_INSTALLED)

# Headless Chromium and CJK fonts, to see rendered emails and reports as a person does
# (Japanese text renders as boxes without the fonts). Debian packages, installed once.
BROWSER := /usr/bin/chromium-headless-shell
$(BROWSER):
	@command -v apt-get >/dev/null || { echo "install chromium-headless-shell and fonts-noto-cjk (Debian packages)"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium-headless-shell fonts-noto-cjk >/dev/null

browser: $(BROWSER)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup
	$(BIN)/mypy functions infra cli tests

# node: tests/infra/test_cdk_cli.py synthesizes through the pinned CLI.
test: lint typecheck node browser
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

# Credentials first, so a shell without them fails in a second, before npm or a synth.
aws-credentials: setup
	@$(BIN)/python -m cli.aws make $(or $(filter bootstrap diff deploy destroy,$(MAKECMDGOALS)),aws-credentials)

bootstrap: aws-credentials node
	$(CDK) bootstrap $(CDK_ARGS)

# The layer is pip-installed for the runtime and architecture the functions declare
# (infra/build.py: manylinux2014_aarch64, CPython 3.12) whatever machine runs this.
diff: aws-credentials node
	$(BIN)/python -m infra.build
	$(CDK) diff $(CDK_ARGS)

deploy: aws-credentials node
	$(BIN)/python -m infra.build
	$(CDK) deploy --all $(CDK_ARGS)

destroy: aws-credentials node
	$(CDK) destroy --all $(CDK_ARGS)

clean:
	rm -rf cdk.out .build .local .mypy_cache .pytest_cache .ruff_cache
