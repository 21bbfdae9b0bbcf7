# onepipe: the two commands are `make test` and (once the services exist) `make run`.
SHELL := /bin/bash
CARGO_TARGET_DIR ?= $(HOME)/.cache/onepipe-target
export CARGO_TARGET_DIR
STACK := deploy/local/stack.sh

.PHONY: test lint fmt bench stack stack-down stack-status

## test: start the local stack, run every test (Rust unit and end-to-end, then the
## cross-checks with confluent-kafka's Python clients), stop the stack even on failure
test:
	$(STACK) up
	@eval "$$($(STACK) env)"; rc=0; \
	  cargo test --workspace || rc=1; \
	  cargo build --workspace --bins && python3 -m pytest -q integration-tests/python || rc=1; \
	  if [ -z "$$ONEPIPE_KEEP_STACK" ]; then $(STACK) down; fi; exit $$rc

## lint: formatting check and clippy with warnings denied
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## bench: throughput and latency benchmarks, reported as ratios against a baseline in the same run
## (BENCH_SECONDS=N sets the measuring time per server, 5 s by default)
bench:
	cargo bench -p onepipe-registry --bench get_schema

## stack: start Kafka, PostgreSQL and the S3 server (see deploy/local/stack.sh)
stack:
	$(STACK) up
	@$(STACK) env

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status
