# Huiyin: the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
ROLE ?= clerk
SUB ?= dev-$(ROLE)
UNIT ?=

.PHONY: help run test prove fuzz gates fmt lint psql migrate verify token openapi smtp-tools spec-tools spec-check seed-demo pg-stop bench bench-queries bench-throughput bench-quick

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## run the service (a private PostgreSQL is started when DATABASE_URL is unset)
	@source scripts/dev-env.sh && $(CARGO) run -p api --bin huiyin -- serve

test: ## run the whole test suite against a private PostgreSQL
	@$(CARGO) build -q -p api --bin huiyin
	@test -x tools/smtp/.venv/bin/python || $(MAKE) -s smtp-tools
	@source scripts/dev-env.sh test && scripts/pg.sh clean-tests && \
	if command -v cargo-nextest >/dev/null 2>&1; then $(CARGO) nextest run --workspace --no-fail-fast; \
	else $(CARGO) test --workspace --no-fail-fast; fi
	@scripts/spec-check.sh

prove: ## the reliability suite (crash, contention, overload, hostile input and callers, fuzz, a 10-minute soak) → RELIABILITY.md
	@scripts/prove.sh all

fuzz: ## run each fuzz target for FUZZ_SECONDS (60); crashes become regression inputs
	@scripts/fuzz.sh

prove-%: ## one part of it: make prove-crash | -contention | -overload | -hostile | -schemathesis | -other-user | -fuzz | -soak
	@scripts/prove.sh $*

gates: fmt lint test ## everything that must pass before a commit

fmt: ## check formatting
	$(CARGO) fmt --all -- --check

lint: ## clippy, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

psql: ## psql on the development database
	@source scripts/dev-env.sh && scripts/pg.sh psql

migrate: ## apply migrations to the development database
	@source scripts/dev-env.sh && $(CARGO) run -q -p api --bin huiyin -- migrate

verify: ## recompute every hash chain of the development database
	@source scripts/dev-env.sh && $(CARGO) run -q -p api --bin huiyin -- verify

token: ## print a token the `make run` server accepts: make token ROLE=handler UNIT=<uuid> [SUB=…]
	@source scripts/dev-env.sh && $(CARGO) run -q -p api --bin huiyin -- token --sub "$(SUB)" --role "$(ROLE)" $(if $(UNIT),--unit "$(UNIT)",)

openapi: ## regenerate the committed openapi/openapi.json
	$(CARGO) run -q -p api --bin huiyin -- openapi > openapi/openapi.json.tmp && mv openapi/openapi.json.tmp openapi/openapi.json

smtp-tools: ## install the notice tests' SMTP server (aiosmtpd, pinned in tools/smtp/requirements.txt) into tools/smtp/.venv
	python3 -m venv tools/smtp/.venv
	tools/smtp/.venv/bin/pip install -q --disable-pip-version-check -r tools/smtp/requirements.txt

spec-tools: ## install the spec check's pinned tools (tools/requirements.txt) into tools/.venv
	python3 -m venv tools/.venv
	tools/.venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt

spec-check: ## lint the served OpenAPI spec and generate a client from it (skipped until `make spec-tools`)
	@scripts/spec-check.sh

seed-demo: ## load the demo town (units, categories, holidays) into the development database
	@source scripts/dev-env.sh && $(CARGO) run -q -p api --bin huiyin -- seed-demo

bench: ## everything, side by side with raw PostgreSQL and postgres-es → BENCHMARKS.md (about 40 minutes at 1 M cases on two cores: 150 append measurements each in a fresh database, one rebuild, a standby's base backup; a run seeds its databases again when they are over a day old, about half an hour at 1 M cases)
	@source scripts/dev-env.sh test && $(CARGO) build --release -p api --bin huiyin && $(CARGO) run --release -p bench --bin huiyin-bench -- all

bench-queries: ## query latencies at 10 k and 1 M cases, rebuild and verify throughput, the standby → BENCHMARKS.md
	@source scripts/dev-env.sh test && $(CARGO) run --release -p bench --bin huiyin-bench -- queries --sizes 10000,1000000

bench-throughput: ## only the rebuild (with its phases) and verification at 1 M cases, each ÷ raw reads of the same rows, printed (about 45 minutes; the rebuild rewrites the 1 M database's ledger and rollups, equal ones; a database over a day old is seeded again first, about half an hour more)
	@source scripts/dev-env.sh test && $(CARGO) run --release -p bench --bin huiyin-bench -- throughput --cases 1000000

bench-quick: ## a small run of the benchmark harness (CI runs it so it never rots; numbers not judged)
	@source scripts/dev-env.sh test && $(CARGO) build --release -p api --bin huiyin && $(CARGO) run --release -p bench --bin huiyin-bench -- all --quick --out target/bench-quick.md --command "make bench-quick"

pg-stop: ## stop the private PostgreSQL
	scripts/pg.sh stop
