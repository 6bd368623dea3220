# make demo: set up .venv and run the demo campaign on the embedded default lab.
# make test: set up .venv and run the whole test suite (what CI runs).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint type check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/demo.sh

test: $(STAMP)
	$(BIN)/pytest --strict-markers -W error

lint: $(STAMP)
	$(BIN)/ruff check lab tests benchmarks
	$(BIN)/lint-imports --no-cache

type: $(STAMP)
	$(BIN)/mypy --strict lab

check: lint type test

clean:
	rm -rf .lab artifacts reports/*.html reports/*.xml reports/*.json
