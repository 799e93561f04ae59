# The two commands of the README: `make demo` and `make test`.
# Both set everything up first (system packages, virtual environment, the package itself).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ioe-installed
DURATION ?= 20

.PHONY: setup demo test test-fast lint format typecheck check bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap scripts/system-packages.txt
	scripts/bootstrap $(VENV)
	touch $(STAMP)

demo: setup
	$(BIN)/ioe demo --duration $(DURATION)

# On every core; a test file stays on one worker (its module fixtures, a browser among them).
PYTEST_PARALLEL ?= -n auto --dist loadfile

test: setup
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The inner loop: everything but the tests that start separate OS processes.
test-fast: setup
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not process"

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: setup
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

typecheck: setup
	$(BIN)/mypy

# Every check, the way CI runs it.
check: lint typecheck test

bench: setup
	$(BIN)/ioe bench chain

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
