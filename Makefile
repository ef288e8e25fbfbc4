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

.PHONY: venv demo run test lint typecheck template-check unit integration e2e bench clean

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

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy shared functions infra tests

template-check: venv
	$(TOOLS)/bin/cfn-lint template.yaml

# Four workers on two cores: the integration tests mostly wait on HTTP and the emulator's clock.
test: lint template-check
	$(BIN)/pytest -q -p no:cacheprovider -n 4

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv
	$(BIN)/pytest -q -n 4 tests/integration

e2e: venv
	$(BIN)/pytest -q tests/e2e

bench: $(APP_STAMP)
	$(BIN)/python -m infra.bench

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
