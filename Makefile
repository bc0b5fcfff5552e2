# seckill — `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo
NEXTEST_PROFILE := $(if $(CI),ci,default)

.DEFAULT_GOAL := help
.PHONY: help deps build fmt lint test test-coverage bench bench-module

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## Install the Debian/Ubuntu packages and tools the build and tests need
	bash scripts/setup.sh

build: ## Build release binaries and the module (target/release/libseckill_module.so)
	$(CARGO) build --release --workspace

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint ## Lint, then every test (unit, property, integration against real servers)
	# Integration tests load target/debug/libseckill_module.so and spawn the binaries.
	$(CARGO) build --workspace --all-targets
	$(CARGO) nextest run --workspace --profile $(NEXTEST_PROFILE)

test-coverage: ## Line coverage of the test suite (installs cargo-llvm-cov on first use)
	$(CARGO) llvm-cov --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-llvm-cov
	$(CARGO) llvm-cov nextest --workspace --html

bench-module: ## SECKILL.RESERVE vs the Lua script vs INCR (redis-benchmark)
	$(CARGO) build --release -p seckill-module
	bash bench/module.sh

bench: bench-module ## Every benchmark, side by side with its baseline
