# quantmesh developer commands. `make demo` runs the main job, `make test` the whole test suite; both install
# what they need first (scripts/setup.sh, idempotent).
SHELL := /bin/bash
PY := .venv/bin/python
BUF := node_modules/.bin/buf
# buf breaking compares the protos with this git ref (the previous commit on main by default).
BREAKING_AGAINST ?= .git\#ref=HEAD~1

.PHONY: setup protos lint breaking check-generated test test-fast demo up bench certs clean

.setup-stamp: scripts/setup.sh pyproject.toml package.json package-lock.json
	./scripts/setup.sh
	touch $@

setup: .setup-stamp

protos: .setup-stamp
	./scripts/gen_protos.sh

lint: .setup-stamp
	$(BUF) lint
	$(PY) -m ruff check core services tools clients tests benchmarks
	.venv/bin/lint-imports --no-cache

breaking: .setup-stamp
	@if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then \
		$(BUF) breaking --against '$(BREAKING_AGAINST)'; \
	else echo "buf breaking: no earlier commit with buf.yaml to compare against"; fi

# Regenerates the stubs and fails when they differ from the committed ones.
check-generated: protos
	@git add -N quantmesh && git diff --exit-code --stat -- quantmesh || \
		(echo "generated code drifted from protos/: run 'make protos' and commit" && exit 1)

test: .setup-stamp check-generated lint breaking
	$(PY) -m pytest -q -p no:cacheprovider

# Without the tests that start vLLM engines (~40 s each).
test-fast: .setup-stamp
	$(PY) -m pytest -q -m "not vllm"

# The main job: the mesh on real model-quantization pairs (fetched, quantized and profiled on first run), held-out
# graded prompts sent to the most accurate pair and through the router, then the before/after table and a PNG.
demo: .setup-stamp
	$(PY) -m clients.cli up --config deploy/mesh/real.yaml --run-sample

# The mesh alone, until Ctrl-C (for `quantmesh chat` / `quantmesh route` in another terminal).
up: .setup-stamp
	$(PY) -m clients.cli up --config deploy/mesh/local.yaml

bench: .setup-stamp
	for b in benchmarks/[a-z]*.py; do n=$$(basename $$b .py); [ $$n = results_io ] || $(PY) -m benchmarks.$$n; done

# A local CA with server and client certificates for TLS / mutual TLS between the services (into .certs/).
certs: .setup-stamp
	$(PY) -m services.common.certs --out .certs

clean:
	rm -rf .venv node_modules .setup-stamp .cache .certs
