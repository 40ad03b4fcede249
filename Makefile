# The verbs of this repository. Logic lives in the `gitops` CLI (scripts/); this file only names it.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8080
APP    ?= pod-details
ENV    ?= dev

# Every app under apps/ with a pyproject.toml is installed editable, so a new app needs no Makefile change.
APPS  := $(patsubst %/pyproject.toml,%,$(wildcard apps/*/pyproject.toml))
LOCKS := requirements/dev.lock $(addsuffix /requirements.lock,$(APPS))
STAMP := $(VENV)/.installed

.PHONY: help setup run check test tools bench e2e lint validate render lock clean cluster-up cluster-down system-deps

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv with the service, the tooling and dev dependencies, from lock files (idempotent)

$(STAMP): $(LOCKS) $(addsuffix /pyproject.toml,$(APPS)) scripts/pyproject.toml scripts/testing/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation $(addprefix -e ,$(APPS)) -e scripts -e scripts/testing
	@touch $@

run: setup ## Serve pod-details on http://127.0.0.1:8080 (PORT=9000 overrides)
	cd apps/pod-details && BIND=127.0.0.1:$(PORT) exec ../../$(BIN)/gunicorn --config python:pod_details.gunicorn_conf 'pod_details.wsgi:app'

tools: setup ## Build the pinned GitOps toolchain from the Go module proxy into the cache (idempotent)
	$(BIN)/gitops tools build

# Hooks and tests that need the pinned toolchain are left out, and the toolchain is hidden from the rest: a test that
# needs it without saying so (`pytest.mark.toolchain`, or a fixture such as `kube_cluster`) fails here.
check: setup ## Lint and the tests that need neither the toolchain nor a control plane: under a minute, before every commit
	SKIP=gitops-validate,actionlint $(BIN)/pre-commit run --all-files --show-diff-on-failure
	GITOPS_TOOLCHAIN_CACHE=$(VENV)/no-toolchain $(BIN)/pytest -q -m "not toolchain and not slow"

test: setup tools system-deps ## Run every test: lint, service, config, tooling, and the e2e loop with Argo CD
	$(BIN)/pre-commit run --all-files --show-diff-on-failure
	$(BIN)/pytest

bench: setup tools system-deps ## Benchmarks: figures and ratios against baselines measured in the same run
	$(BIN)/python benchmarks/service_bench.py
	$(BIN)/python benchmarks/validate_bench.py

e2e: setup tools system-deps ## The whole GitOps loop with the real Argo CD on a local control plane
	$(BIN)/gitops-e2e

# Debian packages used by the benchmark (wrk) and the end-to-end loop in `make test` (redis-server, Argo CD's cache).
SYSTEM_DEPS := wrk redis-server
system-deps: ## Install the Debian packages the benchmarks and e2e need, if missing
	@missing="$$(for p in $(SYSTEM_DEPS); do command -v $$p >/dev/null || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: setup ## pre-commit on every file (the same hooks CI runs)
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

validate: setup tools ## Validate every environment statically
	$(BIN)/gitops validate

render: setup tools ## Render an environment (ENV=dev) as Argo CD would apply it
	$(BIN)/gitops render --env $(ENV)

cluster-up: setup tools ## Start a local etcd + kube-apiserver; prints its KUBECONFIG
	$(BIN)/gitops cluster up

cluster-down: setup ## Stop the local control plane and remove its data
	$(BIN)/gitops cluster down

lock: ## Re-resolve the lock files (needs the network to PyPI)
	for app in $(APPS); do \
	  $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	    $$app/pyproject.toml -o $$app/requirements.lock; \
	  $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	    -c $$app/requirements.lock $$app/build-requirements.in -o $$app/build-requirements.lock; \
	done
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  $(addprefix -c ,$(addsuffix /requirements.lock,$(APPS))) \
	  $(addsuffix /pyproject.toml,$(APPS)) scripts/pyproject.toml requirements/dev.in -o requirements/dev.lock

clean: ## Remove the venv and caches inside the repo (the toolchain cache stays)
	rm -rf $(VENV) .pytest_cache .ruff_cache
