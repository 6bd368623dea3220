# make demo: set up .venv and run the demo campaign on the embedded default lab.
# make demo-distributed: the same story through Redis, PostgreSQL and two zone workers (all on this machine).
# make test: set up .venv and run the whole test suite (what CI runs), spread over the cores (pytest-xdist).
# make test-fast: the unit tier (everything but tests/integration), a few hundred examples per property.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-distributed test test-fast lint type check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/demo.sh

demo-distributed: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/demo-distributed.sh

PYTEST := $(BIN)/pytest --strict-markers -W error
# pytest-xdist, one worker per core. --dist loadfile: a module's tests run on one worker, in order, so a
# module fixture (the demo's run, a rollout lab, the resume reference run) is made once. Collection order
# (--no-loadscope-reorder) hands out the long integration modules first and the short unit modules last.
# (Not --dist loadgroup: with pytest 9.2 it ignores xdist_group marks, pytest-xdist issue #1386.)
XDIST := -n auto --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(PYTEST) $(XDIST) --durations=25

test-fast: $(STAMP)
	$(PYTEST) -n auto --hypothesis-profile=fast --ignore=tests/integration tests

lint: $(STAMP)
	$(BIN)/ruff check lab tests benchmarks
	$(BIN)/lint-imports --no-cache

type: $(STAMP)
	$(BIN)/mypy --strict lab

check: lint type test

# Stops whatever the demo's hosts still run before their files go (`lab ... down` stops, then removes).
clean:
	-[ ! -x $(BIN)/lab ] || [ ! -d .lab ] || { $(BIN)/lab sandbox down >/dev/null; $(BIN)/lab production down; }
	rm -rf .lab artifacts reports/*.html reports/*.xml reports/*.json
