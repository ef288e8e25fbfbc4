# lorapin — every target creates the virtual environments it needs first.
#   make demo   run the retraining story on the embedded local stack
#   make test   lint, type-check, template checks and every test
#   make run    the local stack, serving until Ctrl-C
#   make bench  the performance table (REQUIREMENTS §10)

PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
PIP_QUIET := --quiet --disable-pip-version-check --no-warn-script-location
# Three workers on two cores: the integration tests wait on HTTP and the emulator's timers part of the
# time; a fourth worker only adds contention (measured: README, "Tests").
PYTEST_WORKERS ?= 3

.PHONY: venv demo run test checks lint typecheck template-check pytest unit integration e2e bench clean

$(APP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import lorapin, moto, replicate, aws_lambda_powertools, pynamodb, PIL"
	touch $@

# SAM's linter lives in its own venv: it pins boto3 and pydantic versions the app must not inherit.
$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_QUIET) 'cfn-lint>=1.20' 2>&1 | grep -v "is ignored: it is neither" || true
	$(TOOLS)/bin/cfn-lint --version
	touch $@

venv: $(APP_STAMP) $(TOOLS_STAMP)

demo: $(APP_STAMP)
	$(BIN)/python -m infra.local demo

run: $(APP_STAMP)
	$(BIN)/python -m infra.local up

# The static checks and the test suite run side by side; `make test` fails if either does.
test: venv
	$(MAKE) --no-print-directory -j2 --output-sync=target checks pytest

checks: lint typecheck template-check

lint: $(APP_STAMP)
	$(BIN)/ruff check .

typecheck: $(APP_STAMP)
	$(BIN)/mypy shared functions infra tests

template-check: $(TOOLS_STAMP)
	$(TOOLS)/bin/cfn-lint template.yaml

pytest: $(APP_STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile

unit: $(APP_STAMP)
	$(BIN)/pytest -q -m unit

integration: $(APP_STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m integration

e2e: $(APP_STAMP)
	$(BIN)/pytest -q -m e2e

bench: $(APP_STAMP)
	$(BIN)/python -m infra.bench

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
