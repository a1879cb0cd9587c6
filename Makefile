# Vibecode on Ray. `make up` runs the platform with embedded defaults; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED ?= 0
export LITELLM_LOCAL_MODEL_COST_MAP ?= True
export HF_HUB_OFFLINE ?= 1

.PHONY: up venv test lint typecheck imports unit lock bench clean

$(STAMP): requirements.lock pyproject.toml
	@command -v python3.11 >/dev/null || { echo "python3.11 is required"; exit 1; }
	@test -x $(PY) || python3.11 -m venv $(VENV)
	PIP_CONFIG_FILE=/dev/null $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	PIP_CONFIG_FILE=/dev/null $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/vibecode up

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

test: $(STAMP) lint typecheck imports
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/gateway.py

# Re-resolve the lock (needs uv: pip install uv). litellm stays pinned exactly in requirements.in.
lock:
	uv pip compile --generate-hashes --python-version 3.11 --index-url https://pypi.org/simple \
		requirements-dev.in -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
