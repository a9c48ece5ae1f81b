# sentrail — quick start: `make demo`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck layers unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,evidence,postgres,server,alerts,nats,mcp,openai-agents,langchain]'
	touch $(STAMP)

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
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache demo-report.json
