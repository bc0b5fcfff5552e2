# seckill — `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
NEXTEST_PROFILE := $(if $(CI),ci,default)

.DEFAULT_GOAL := help
.PHONY: help deps build fmt lint test test-coverage bench bench-module bench-stack load-test simulate \
        up down compose-logs docker-build

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## Install the Debian/Ubuntu packages and tools the build and tests need
	bash scripts/setup.sh

build: ## Build release binaries and the module (target/release/libseckill_module.so)
	$(CARGO) build --release --workspace

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt check, clippy with warnings as errors, cargo-deny (bans, licences, sources, advisories)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/deny.sh

test: lint ## Lint, then every test (unit, property, integration against real servers, browser)
	# Integration tests load target/debug/libseckill_module.so and spawn the binaries.
	$(CARGO) build --workspace --all-targets
	# gateway/tests/schemathesis.rs runs schemathesis (PyPI) from .state/schemathesis.
	bash scripts/install-schemathesis.sh
	$(CARGO) nextest run --workspace --profile $(NEXTEST_PROFILE)

test-coverage: ## Line coverage of the test suite (installs cargo-llvm-cov on first use)
	$(CARGO) llvm-cov --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-llvm-cov
	$(CARGO) llvm-cov nextest --workspace --html

bench-module: ## Only the module rows: RESERVE vs XADD vs Lua vs INCR (shipped redis.conf and no AOF), memory per buyer
	$(CARGO) build --release -p seckill-module
	bash bench/module.sh

bench-stack: ## Only the whole stack as `make run` starts it, under wrk; checks every order reached MariaDB
	bash bench/stack.sh

bench: ## Every benchmark (shipped configuration + labelled variants) next to its baseline; writes docs/bench-results/
	bash bench/run-all.sh

load-test: ## k6 against a private stack; checks exactly-S orders, no user twice, stock 0, lag 0
	bash bench/load-test.sh

simulate: ## A realistic flash sale through the whole stack, with its timeline plotted
	bash bench/simulate-sale.sh

up: ## docker compose up (Redis+module, MySQL 8, etcd, gateway, worker, Prometheus, Grafana, Jaeger)
	$(COMPOSE) up -d --build

down: ## docker compose down
	$(COMPOSE) down

compose-logs: ## Follow the docker compose services' logs
	$(COMPOSE) logs -f --tail=100

docker-build: ## Build the gateway, worker and redis images
	$(COMPOSE) build

# run, health, logs, dev, db-init, db-migrate, db-rollback: the local stack.
include mk/stack.mk
