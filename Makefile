# The two commands that do all set-up on a fresh machine (see README.md):
#   make up     install (once, cached) and start the local pipeline with firedrill
#   make test   bring up what the tests need and run every test
# Everything heavy is cached under $LOCAL_STACK_CACHE (default ~/.cache/firedrill).
# `make up ENGINE=spark` runs the pipeline on Spark Structured Streaming instead of Flink.

STACK := compose/local/stack
ENGINE ?= flink

.PHONY: up down status test unit lint bench

up:
	$(STACK) up --engine $(ENGINE)
	cargo build --release --locked
	$(STACK) start firedrill
	@$(STACK) status
	@echo
	@echo "firedrill metrics   http://127.0.0.1:9400/metrics"
	@if [ "$(ENGINE)" = spark ]; then \
	  echo "Spark master UI     http://127.0.0.1:8080"; \
	  echo "Spark driver UI     http://127.0.0.1:4040"; \
	else \
	  echo "Flink UI            http://127.0.0.1:8081"; \
	fi
	@echo "Prometheus          http://127.0.0.1:9090"
	@echo "Alertmanager        http://127.0.0.1:9093"
	@echo "logs                .stack/logs/"

down:
	$(STACK) down

status:
	$(STACK) status

test:
	scripts/test

# Unit tests only: no stack needed.
unit:
	cargo test --locked --lib --bins

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

bench:
	scripts/bench
