# sentrail — quick start: `make demo`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

EXTRAS := dev evidence postgres server alerts nats mcp openai-agents langchain

.PHONY: demo test lint typecheck layers unit bench clean lock

# Exactly the locked set: every transitive dependency pinned with its hashes
# (requirements.lock), then sentrail itself, editable, without resolving anything.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install -qq --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Refresh the lock after changing dependencies in pyproject.toml (needs the registry).
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet 'uv==0.13.9'
	.venv-lock/bin/uv pip compile pyproject.toml requirements-build.in \
	    $(foreach e,$(EXTRAS),--extra $(e)) --universal --python-version 3.11 \
	    --generate-hashes --quiet -o requirements.lock
	rm -rf .venv-lock

# The example set holds one deliberately truncated file: the batch reports it and exits 2.
demo: $(STAMP)
	$(BIN)/sentrail trace analyze examples/traces --batch --policy examples/policy.yaml \
	    --output demo-report.json --fail-on never || [ $$? -eq 2 ]
	@echo
	$(BIN)/sentrail trace analyze examples/traces/triage-restart.json --policy examples/policy.yaml \
	    --fail-on never

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck layers unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/evidence_bench.py
	$(BIN)/python benchmarks/store_bench.py
	$(BIN)/python benchmarks/stream_bench.py
	$(BIN)/python benchmarks/decide_bench.py

clean:
	rm -rf $(VENV) .venv-lock .mypy_cache .pytest_cache .ruff_cache demo-report.json
