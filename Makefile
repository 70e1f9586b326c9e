# Boxoffice — every target is a command a newcomer can run. `make help` lists them.
SHELL := /bin/bash
UV ?= uv
PY := $(UV) run --frozen
PROTO_OUT := libs/contracts
IMAGE ?= boxoffice/boxoffice
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

.PHONY: proto
proto: install ## regenerate the Python message code from proto/
	rm -rf $(PROTO_OUT)/boxoffice
	$(PY) python -m grpc_tools.protoc -Iproto --python_out=$(PROTO_OUT) --mypy_out=$(PROTO_OUT) \
		$$(find proto -name '*.proto' | sort)
	find $(PROTO_OUT)/boxoffice -type d -exec touch {}/__init__.py \;

.PHONY: run
run: install ## start every service locally (FLOWER=1 adds Flower on :5555; Ctrl-C stops all)
	$(PY) boxoffice-dev run $(if $(FLOWER),--flower)

.PHONY: test
test: install ## unit, integration and end-to-end tests (real PostgreSQL, Redis, workers)
	$(PY) pytest tests

.PHONY: chaos
chaos: install ## the full chaos test: 2,000 bookings while processes are killed and restarted
	CHAOS_BOOKINGS=$${CHAOS_BOOKINGS:-2000} CHAOS_KILLS=$${CHAOS_KILLS:-3} \
		$(PY) pytest tests/e2e/test_chaos.py -s -p no:cacheprovider -o timeout=3600

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
	docker build --pull -t $(IMAGE):$(TAG) .
	@echo "built $(IMAGE):$(TAG); deploy it with: helm upgrade --install boxoffice $(CHART) --set image.repository=$(IMAGE) --set image.tag=$(TAG)"

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
