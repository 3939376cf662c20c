# order-import — every target does its own set-up; `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# pytest-xdist workers for `make test` (the suite is parallel-safe: every test makes its own
# sandboxes on ephemeral ports and writes only under its tmp_path); tests are spread one by one
# (--dist load). `make test WORKERS=0` runs it in one process, as before; WORKERS=auto starts
# one worker per CPU. --dist loadgroup is no use: with pytest 9 its xdist_group marks are
# silently ignored (xdist 3.8 renames item._nodeid, which pytest 9 no longer reads).
WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install dev lint fmt types test test-fast demo sandbox bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv/ with the order-import command and dev tools

dev: install  ## alias of install

lint: install  ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check pipeline schemas sandbox tests bench sample_data
	$(BIN)/ruff format --check pipeline schemas sandbox tests bench sample_data
	$(BIN)/mypy

fmt: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix pipeline schemas sandbox tests bench sample_data
	$(BIN)/ruff format pipeline schemas sandbox tests bench sample_data

types: lint  ## alias: mypy runs as part of lint

test: lint  ## all checks: lint, types, the whole pytest suite (drills included), on 2 workers
	$(BIN)/pytest -q -p no:cacheprovider -n $(WORKERS)

test-fast: install  ## pytest without the drills
	$(BIN)/pytest -q -p no:cacheprovider -n $(WORKERS) -m "not drill and not browser"

demo: install  ## real import of sample_data/ against a local sandbox; writes reports to .demo/
	$(BIN)/python sample_data/demo.py

sandbox: install  ## start the local Chargebee sandbox on 127.0.0.1:8080
	$(BIN)/order-import sandbox --port 8080

bench: install  ## run the benchmarks in bench/ and write bench/results.md
	$(BIN)/python -m bench

clean:  ## remove the virtualenv, caches and generated reports
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache reports .demo *.egg-info
