# onepipe: the two commands are `make test` and (once the services exist) `make run`.
SHELL := /bin/bash
CARGO_TARGET_DIR ?= $(HOME)/.cache/onepipe-target
export CARGO_TARGET_DIR
STACK := deploy/local/stack.sh

.PHONY: run test lint fmt bench stack stack-down stack-status image delta-readers
# The Delta Lake readers of test_delta_readers.py, in a virtualenv of their own.
DELTA_VENV ?= $(HOME)/.cache/onepipe/venv-delta
export ONEPIPE_DELTA_PYTHON := $(DELTA_VENV)/bin/python

## run: the whole pipeline on one machine (Kafka + embedded defaults) with a demo stream and a
## report, then keeps running until Ctrl-C; RUN_ARGS="--once --events 50000" to stop after the report
run:
	cargo build --profile fast --bins
	deploy/local/run.sh $(RUN_ARGS)

## test: start the local stack, run every test (Rust unit and end-to-end, then the
## cross-checks with confluent-kafka's Python clients), stop the stack even on failure
test: delta-readers
	$(STACK) up
	@eval "$$($(STACK) env)"; rc=0; \
	  cargo test --workspace --no-fail-fast || rc=1; \
	  cargo build --workspace --bins && python3 -m pytest -q -rs integration-tests/python || rc=1; \
	  if [ -z "$$ONEPIPE_KEEP_STACK" ]; then $(STACK) down; fi; exit $$rc

## delta-readers: the `deltalake` Python package, DuckDB with its delta extension and PySpark
## with delta-spark, in $(DELTA_VENV) (duckdb-ext-delta needs a duckdb of its own version), and
## delta-spark's jars in ~/.m2 (Spark's own download cannot reach a registry here)
DELTA_SPARK_ARTIFACT := io.delta:delta-spark_2.13:4.0.0
delta-readers:
	@test -x $(DELTA_VENV)/bin/python || python3 -m venv $(DELTA_VENV)
	$(DELTA_VENV)/bin/pip install -q --disable-pip-version-check -r integration-tests/python/delta/requirements.txt
	@test -f $(HOME)/.m2/repository/io/delta/delta-spark_2.13/4.0.0/delta-spark_2.13-4.0.0.jar -a \
	  -f $(HOME)/.m2/repository/io/delta/delta-storage/4.0.0/delta-storage-4.0.0.jar || \
	  mvn -q dependency:get -Dartifact=$(DELTA_SPARK_ARTIFACT)

## image: the container image the Helm chart runs (onepipe:<appVersion>), from deploy/Dockerfile,
## with podman where installed, else docker; compiles the release binaries in the builder stage.
## IMAGE_ARGS="--prebuilt DIR" packs binaries built already instead (what `make test` does)
image:
	deploy/image.sh build $(IMAGE_ARGS)

## lint: formatting check and clippy with warnings denied
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## bench: throughput and latency benchmarks, each reported as a ratio against a baseline in the
## same run (BENCH_SECONDS=N sets the measuring time per side, 5 s by default); starts the stack
## and installs the Python baselines (DuckDB, confluent-kafka)
bench:
	$(STACK) up
	python3 -m pip install -q --disable-pip-version-check -r integration-tests/python/requirements.txt
	cargo bench -p onepipe-registry --bench get_schema
	@eval "$$($(STACK) env)"; cargo bench -p onepipe-integration-tests --bench http_producer
	@eval "$$($(STACK) env)"; cargo bench -p onepipe-copycat --bench archive
	cargo bench -p onepipe-archive --bench listing
	cargo bench -p onepipe-copydog --bench merge
	@eval "$$($(STACK) env)"; cargo bench -p onepipe-warehouse-loader --bench load
	@eval "$$($(STACK) env)"; cargo bench -p onepipe-verifier --bench checks
	@eval "$$($(STACK) env)"; cargo bench -p onepipe-online-sink --bench freshness

## stack: start Kafka, PostgreSQL and the S3 server (see deploy/local/stack.sh)
stack:
	$(STACK) up
	@$(STACK) env

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

## helm-check: helm lint + template of helm/onepipe (default and ci/ values), every manifest
## validated offline against the Kubernetes schemas (installs helm and kubernetes-validate once)
.PHONY: helm-check
helm-check:
	deploy/helm-check.sh
