# Two commands on a fresh machine: `make run` and `make test`. Everything else is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test setup system-deps native lint typecheck pytest bench clean

# As root, isolated workers run as GF_WORKER_USER (nobody): let it reach the interpreter.
setup: system-deps $(STAMP)
	@bash scripts/worker-user.sh $(BIN)/python

# System packages the tests need (git, redis-server, a C++ toolchain); installed with apt when missing.
system-deps:
	@bash scripts/system-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	@touch $(STAMP)

# The C++ parts (native/): the AIGES plugin's grpc++ server and the benchmark's client.
native: setup
	@$(MAKE) --no-print-directory -C native PYTHON=../$(BIN)/python

# A wheel of GlobalFunc in dist/ (it is on no package index): what `gf aiges create` projects install.
.PHONY: wheel
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps --wheel-dir dist .

run: setup
	$(BIN)/gf --root packages serve --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/hadolint docker/*Dockerfile

typecheck: setup
	$(BIN)/mypy

pytest: setup native
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; exit $$rc

test: lint typecheck pytest

bench: setup native
	@bash scripts/system-deps.sh --bench
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_storage.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_pool.py
	$(BIN)/python bench/bench_aiges.py

clean:
	@$(MAKE) --no-print-directory -C native clean
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
