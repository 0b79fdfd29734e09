# The two commands a newcomer needs: `make demo` and `make test`.
# Each bootstraps what it needs by itself: uv in .tools/, the locked environment in .venv/.
SHELL := /bin/bash
PYTHON ?= python3.11
UV := .tools/bin/uv
VENV := .venv/.synced

.PHONY: demo test lint typecheck check-all bench docs clean system-packages stack stack-down stack-status

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check 'uv==0.13.9'

$(VENV): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $(VENV)

# Debian packages first: a missing one stops the run at once (or is installed), never ten minutes in.
system-packages:
	scripts/system-packages.sh openssh-client chromium gnupg spin gcc

demo: $(VENV)
	.venv/bin/python -m epay.demo

test: system-packages $(VENV)
	.venv/bin/pytest

lint: $(VENV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: $(VENV)
	.venv/bin/mypy

check-all: lint typecheck test

bench: $(VENV)
	.venv/bin/python bench/codec.py

docs: $(VENV)
	.venv/bin/python -m epay.formats.docs > schemas/LAYOUTS.md

# A production-shaped stack on this machine (docs/deployment.md): Airflow api-server, scheduler,
# dag-processor, triggerer, two Celery workers, PostgreSQL, Redis, the simulated post office.
STACK ?= dev
PORT_BASE ?= 28080
REDIS_DB ?= 7
STACK_ARGS = --name $(STACK) --port-base $(PORT_BASE) --redis-db $(REDIS_DB)

stack: $(VENV)
	.venv/bin/python -m deploy.stack up $(STACK_ARGS)

stack-down: $(VENV)
	.venv/bin/python -m deploy.stack down $(STACK_ARGS)

stack-status: $(VENV)
	.venv/bin/python -m deploy.stack status $(STACK_ARGS)

clean:
	rm -rf .venv .tools var
