# Two commands for a new user (see README.md):
#   make run   - set up .venv and decompose the bundled default dataset
#   make test  - set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= factorch-out

.PHONY: install install-test run test lint bench bench-quick clean

# Two stamps: `make run` installs only what the main job needs (torch, factorch and matplotlib
# for its figures); `make test` adds the test extra (pytest and the anchor libraries).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build on this machine's disk (an unpinned torch pulls CUDA).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[plot]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[test,plot]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(VENV)/bin/factorch decompose --out $(OUT) --force

test: install-test
	$(PY) -m pytest -q

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy

bench-quick: install-test
	$(PY) benchmarks/bench_algebra.py --quick
	$(PY) benchmarks/bench_decomp.py --quick

bench: install-test
	$(PY) benchmarks/bench_algebra.py
	$(PY) benchmarks/bench_decomp.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
