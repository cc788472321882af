# Two commands set up everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tandem demo

# The gates first (cheap, and a failure there makes the tests moot), then the suite, in
# parallel: a worker per core (see pytest_xdist_auto_num_workers in tests/conftest.py), a test
# at a time to whichever is free, a module marked xdist_group kept on one worker.
# `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= auto
test: check
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

check: $(STAMP)
	$(BIN)/ruff check console store tests
	$(BIN)/ruff format --check console store tests
	$(BIN)/mypy
	$(BIN)/lint-imports

lint: check

bench: $(STAMP)
	$(BIN)/tandem bench store
	$(BIN)/tandem bench triage

clean:
	rm -rf $(VENV) *.egg-info
