# Two commands matter: `make run` and `make test`. The rest are their parts.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Byte-compile at install: this environment may set PYTHONDONTWRITEBYTECODE, and without .pyc
# files every CLI start re-parses SQLAlchemy and friends (seconds instead of tenths).
export UV_COMPILE_BYTECODE := 1
export VPNREG_ALLOW_DOCUMENTATION_PREFIXES ?= 1

.PHONY: install run test check lint typecheck unit bench system-deps clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# A no-op when the lock and the project file have not changed since the last install.
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --quiet
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/vpnreg db upgrade
	$(BIN)/vpnreg demo
	$(BIN)/vpnreg serve --host 127.0.0.1 --port 8000

system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: system-deps install lint typecheck unit

# The quick loop while developing: lint, types, the import contracts and the tests that need no
# PostgreSQL, root, network namespace, VPN software or browser and are not marked slow, on every
# core, with fewer Hypothesis examples. No system packages, no root. `make test` is the whole
# suite, as CI runs it.
QUICK_TESTS := not postgres and not lab and not browser and not slow
check: install lint typecheck
	$(BIN)/pytest -n auto -m "$(QUICK_TESTS)" --hypothesis-profile=quick

bench: install
	bash scripts/system-deps.sh --bench
	$(UV) sync --locked --quiet --group bench
	$(BIN)/python -m bench.all

clean:
	rm -rf $(VENV) .uv .mypy_cache .ruff_cache .pytest_cache
