# Two commands for a new user (see README.md):
#   make run   - set up .venv and decompose the bundled default dataset
#   make test  - set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= factorch-out

.PHONY: install install-test run test lint bench bench-quick clean docs docs-check

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

# Documentation (issue 19): `make docs` builds the site into docs/_build/html (open index.html;
# no server, no network); `make docs-check` also opens it in headless Chromium and checks it.
$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

docs: $(VENV)/.docs-installed
	rm -rf docs/_build/html docs/auto_examples docs/api/generated docs/benchmarks/generated
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

docs-check: docs
	$(PY) tests/docs/check_site.py docs/_build/html --screenshots docs/_screenshots
