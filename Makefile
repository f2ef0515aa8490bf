# caliber: `make run` (the main job) and `make test` (the tests). Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.caliber-installed
WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: all install run test test-slow bench clean

all: test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# The main job: a small embedded sample (generated once, cached under cache/),
# the jet response processor with the L1L2 baseline and the shipped model, report and plots.
run: $(STAMP)
	$(PY) runner.py make-run --workers $(WORKERS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) runner.py bench all

clean:
	rm -rf outputs cache .pytest_cache
