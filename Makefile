# The two commands a newcomer types (see README.md):
#   make demo   set up .venv (if needed) and run the main job on data mrirecon makes itself
#   make test   set up .venv (if needed) and run the test suite
# Both create or reuse a virtual environment in the checkout and install the project with the
# pinned constraints (torch 2.13.0 CPU on these machines).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mrirecon-installed
DEMO_DIR ?= demo_output
PYTEST_ARGS ?=

.PHONY: demo test lint install benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mrirecon demo --output-dir $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

benchmarks: $(STAMP)
	$(BIN)/python -m benchmarks.physics

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
