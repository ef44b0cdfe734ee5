# Task index. `make test` is the whole check CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help test demo lint fmt golden bench engine deb clean-containers

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

test: ## engine up, fixtures, fmt, clippy, unit and real-engine integration tests
	scripts/test.sh

demo: ## run the end-to-end demo against the local engine
	scripts/demo.sh

lint: ## formatting check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

fmt: ## format the code
	cargo fmt --all

golden: ## rewrite the seccomp golden files from the current generator
	CLW_UPDATE_GOLDEN=1 cargo test --test seccomp_golden

bench: ## benchmarks against their baselines; writes target/bench/ and docs/BENCHMARKS.md (minutes)
	scripts/bench.sh

deb: ## build the Debian package (release build) into target/debian/ with dpkg-deb
	scripts/deb.sh

engine: ## start the Docker engine (installing it if needed) and build the fixture images
	scripts/engine-up.sh
	scripts/build-fixtures.sh

# Removes test-owned containers only: those labelled clw-test=1, and managed containers of
# fortresses whose name starts with `clwt-` (the prefix every test fixture uses) or `clwb-` (the
# benchmarks'). A real
# fortress on the same engine is left alone.
clean-containers: ## remove containers left behind by tests
	@ids=$$( { docker ps -aq --filter label=clw-test=1; \
	  docker ps -a --filter label=clw-fortress.managed=1 \
	    --format '{{.ID}} {{.Label "clw-fortress.fortress"}}' | awk '$$2 ~ /^clw[tb]-/ {print $$1}'; } | sort -u ); \
	if [ -n "$$ids" ]; then docker rm -f -v $$ids >/dev/null && echo "removed $$(echo $$ids | wc -w) container(s)"; \
	else echo "no test containers"; fi
