# lorapin — every target creates the virtual environments it needs first.
#   make demo   run the retraining story on the embedded local stack
#   make test   lint, type-check, template checks and every test
#   make run    the local stack, serving until Ctrl-C
#   make bench  the performance table (REQUIREMENTS §10)
#   make artifact-test  sam build, then run the built functions in python3.12 (part of make test)

PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
TOOLS_REQUIREMENTS := infra/build/tools-requirements.txt
SAM := SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam
PIP_QUIET := --quiet --disable-pip-version-check --no-warn-script-location
# Three workers on two cores: the integration tests wait on HTTP and the emulator's timers part of the
# time; a fourth worker only adds contention (measured: README, "Tests").
PYTEST_WORKERS ?= 3

.PHONY: venv browser demo run test checks lint typecheck template-check pytest unit integration e2e artifact-test bench clean

$(APP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import lorapin, moto, replicate, aws_lambda_powertools, pynamodb, PIL"
	touch $@

# SAM CLI and its linter live in their own venv: they pin boto3 and pydantic versions the app must not inherit.
$(TOOLS_STAMP): $(TOOLS_REQUIREMENTS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_QUIET) -r $(TOOLS_REQUIREMENTS) 2>&1 | grep -v "is ignored: it is neither" || true
	$(TOOLS)/bin/cfn-lint --version
	$(SAM) --version
	touch $@

venv: $(APP_STAMP) $(TOOLS_STAMP)

# The console's browser tests drive Debian's Chromium through its chromedriver: installed when absent.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
	  echo "installing chromium and chromium-driver (Debian) for the console's browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi
	/usr/bin/chromium --version

demo: $(APP_STAMP)
	$(BIN)/python -m infra.local demo

run: $(APP_STAMP)
	$(BIN)/python -m infra.local up

# The static checks and the test suite run side by side; `make test` fails if either does.
test: venv browser
	$(MAKE) --no-print-directory -j2 --output-sync=target checks pytest

checks: lint typecheck template-check

lint: $(APP_STAMP)
	$(BIN)/ruff check .

typecheck: $(APP_STAMP)
	$(BIN)/mypy shared functions infra tests

# cfn-lint, then SAM's own checks offline: `--lint` (cfn-lint as SAM runs it) and the plain validation,
# which runs SAM's transform (it needs a region, no credentials; an empty config keeps samconfig's lint off).
template-check: $(TOOLS_STAMP)
	$(TOOLS)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --template-file template.yaml
	@mkdir -p build && printf 'version = 0.1\n' > build/samconfig-plain.toml
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --template-file template.yaml --config-file $(CURDIR)/build/samconfig-plain.toml

# Every test, the built-artifact tests (tests/artifact) included, once.
pytest: $(APP_STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile

unit: $(APP_STAMP)
	$(BIN)/pytest -q -m unit

integration: $(APP_STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m integration

e2e: $(APP_STAMP) browser
	$(BIN)/pytest -q -m e2e

# sam build (x86_64 copy of the template, so its wheels load here), then each function imported and
# invoked from the build in a clean python3.12 against moto (tests/artifact; needs python3.12, see README).
artifact-test: $(APP_STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m artifact tests/artifact

bench: $(APP_STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m infra.bench

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
