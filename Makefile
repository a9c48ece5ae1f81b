# sentrail — quick start: `make demo`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

EXTRAS := dev fast evidence postgres server alerts witness-s3 nats mcp openai-agents langchain

DEMO   := .demo

# The per-step hot path compiled by mypyc (setup.py); SENTRAIL_COMPILE=0 keeps it pure Python.
export SENTRAIL_COMPILE ?= 1
INSTALL_SELF := $(BIN)/pip install -qq --no-deps --no-build-isolation -e .

.PHONY: demo test lint typecheck layers unit bench clean lock screenshots native

# Exactly the locked set: every transitive dependency pinned with its hashes
# (requirements.lock), then sentrail itself, editable, without resolving anything.
$(STAMP): requirements.lock pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --require-hashes --no-deps -r requirements.lock
	@echo 'Installing sentrail (compiling its hot path with mypyc: a minute or two)'
	$(INSTALL_SELF)
	touch $(STAMP)

# Rebuild the compiled modules when a source changed since the build (sentrail/_native.py
# would otherwise run the stale ones' sources, correctly but slower, with a warning).
native: $(STAMP)
	@$(BIN)/python -c 'import sys, sentrail._native as n; sys.exit(n.main(["--check"]))' \
	    > /dev/null 2>&1 || \
	    { if [ "$$SENTRAIL_COMPILE" = 1 ]; then \
	          echo 'Compiling the hot path with mypyc (sources changed since the build; about 2 minutes)'; \
	      else echo 'Removing the compiled build (SENTRAIL_COMPILE=0)'; fi; \
	      $(INSTALL_SELF); }

# Refresh the lock after changing dependencies in pyproject.toml (needs the registry).
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet 'uv==0.13.9'
	.venv-lock/bin/uv pip compile pyproject.toml requirements-build.in \
	    $(foreach e,$(EXTRAS),--extra $(e)) --universal --python-version 3.11 \
	    --generate-hashes --quiet -o requirements.lock
	rm -rf .venv-lock

# The example set holds one deliberately truncated file: the batch reports it and exits 2.
demo: native
	@echo '$$ sentrail trace analyze examples/traces --batch --policy examples/policy.yaml --output demo-report.json'
	@$(BIN)/sentrail trace analyze examples/traces --batch --policy examples/policy.yaml \
	    --output demo-report.json --fail-on never || [ $$? -eq 2 ]
	@echo '(examples/traces/truncated.json is broken on purpose: it is reported, the rest analysed.)'
	@echo
	@echo '$$ sentrail trace analyze examples/traces/triage-restart.json --policy examples/policy.yaml'
	@$(BIN)/sentrail trace analyze examples/traces/triage-restart.json --policy examples/policy.yaml \
	    --fail-on never
	@# The dashboard: a demo store with the example traces, and a key to sign in with.
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	@SENTRAIL_HOME=$(DEMO) $(BIN)/sentrail ingest examples/traces --tenant demo --app demo \
	    --policy examples/policy.yaml > $(DEMO)/ingest.log 2>&1 || [ $$? -eq 2 ]
	@SENTRAIL_HOME=$(DEMO) $(BIN)/sentrail apikey create --tenant demo --app demo \
	    --scopes read,triage,approve,contain > $(DEMO)/demo-key 2>/dev/null
	@echo
	@echo "Dashboard: run   SENTRAIL_HOME=$(DEMO) $(BIN)/sentrail serve"
	@echo "           open  http://127.0.0.1:8080/ui/  and sign in with the demo key:"
	@echo "                 $$(cat $(DEMO)/demo-key)   (also in $(DEMO)/demo-key)"
	@echo "           pin   $$($(BIN)/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][0]["verifier_key"])' $(DEMO)/keys/keys.json)"
	@echo "                 on the Verifier key page to see the provenance badges verified in the browser."
	@echo "Investigate: SENTRAIL_HOME=$(DEMO) $(BIN)/sentrail runs list --tenant demo   (docs/forensics.md)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks setup.py
	$(BIN)/ruff format --check src tests benchmarks setup.py

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: native
	$(BIN)/pytest

test: lint typecheck layers unit

bench: native
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/content_bench.py
	$(BIN)/python benchmarks/evidence_bench.py
	$(BIN)/python benchmarks/store_bench.py
	$(BIN)/python benchmarks/stream_bench.py
	$(BIN)/python benchmarks/decide_bench.py
	$(BIN)/python benchmarks/ui_bench.py
	$(BIN)/python benchmarks/replay_bench.py

# Screenshots of every dashboard view (docs/screenshots/), taken by the system Chromium.
screenshots: native
	$(BIN)/python -m tests.ui.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .venv-lock .mypy_cache .pytest_cache .ruff_cache .hypothesis demo-report.json $(DEMO) build
	rm -f src/*__mypyc.*.so src/sentrail/_native.json
	find src -name '*.cpython-*.so' -delete
