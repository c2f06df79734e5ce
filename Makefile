# Two commands on a fresh machine: `make run` and `make test`. Everything else is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test setup system-deps native lint typecheck pytest test-native bench clean

# `make test` needs every native part (setup.py builds them in the install): a part that
# cannot be built fails the install, and a missing one fails the tests instead of falling back.
ifneq ($(filter test pytest test-native,$(MAKECMDGOALS)),)
export GF_REQUIRE_NATIVE := 1
endif

# As root, isolated workers run as GF_WORKER_USER (nobody): let it reach the interpreter.
setup: system-deps $(STAMP)
	@bash scripts/worker-user.sh $(BIN)/python

# System packages the tests need (git, redis-server, a C++ toolchain); installed with apt when missing.
system-deps:
	@bash scripts/system-deps.sh

# The install builds the native parts (setup.py: the grpc++ plugin server, aiges_embed,
# libwrapper.so), reusing unchanged objects under build/native; it says what is missing.
$(STAMP): pyproject.toml setup.py $(wildcard native/aiges/*.cc native/aiges/*.h)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	@$(BIN)/python -c 'from server.aiges.native import say_missing; say_missing()'
	@touch $(STAMP)

# The benchmark's C++ client (native/Makefile); the native parts of the package come with setup.
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

pytest: setup
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; exit $$rc

# libwrapper.so under valgrind: lost memory must not grow from 1,000 to 10,000 calls.
test-native: setup
	@PYTHON=$(BIN)/python bash tests/native/leak_check.sh

test: lint typecheck pytest test-native

bench: setup native
	@bash scripts/system-deps.sh --bench
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_storage.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_pool.py
	$(BIN)/python bench/bench_aiges.py

# Build every image of docker/ with podman on a local stand-in base (no registry needed) and
# check their files (docker/README.md). Not part of `make test`: it needs root, apt and minutes.
.PHONY: images
images:
	@bash scripts/podman-base.sh
	@bash docker/check-images.sh

clean:
	@$(MAKE) --no-print-directory -C native clean
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
