# mailfax: `make run` starts the gateway on the embedded default; `make test` runs every check;
# `make docs` builds the manual.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-stamp

.PHONY: setup run test lint docs chaos bench mutate clean

$(STAMP): pyproject.toml
	@echo "mailfax: installing into $(VENV) (the first time takes a minute or two; later runs start at once)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "mailfax: installing mailfax and its dependencies ..."
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@echo "mailfax: installed"
	@touch $(STAMP)

# The manual's tools are installed on the first `make docs` only (not for `make run`).
$(DOCS_STAMP): $(STAMP)
	@echo "mailfax: installing the documentation tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	@touch $(DOCS_STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/mailfax serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The manual (docs/) as HTML in docs/_build/html; every warning is an error.
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

# Larger crash and fault runs than CI's (MAILFAX_CHAOS_SCALE=1), then the same-number runs ten
# times over (MAILFAX_CHAOS_RUNS); prints the invariants checked.
chaos: $(STAMP)
	MAILFAX_CHAOS_SCALE=$${MAILFAX_CHAOS_SCALE:-6} $(BIN)/pytest -s -q tests/test_chaos.py
	MAILFAX_CHAOS_RUNS=$${MAILFAX_CHAOS_RUNS:-10} $(BIN)/pytest -s -q tests/test_chaos.py -k same_number

# Figures and ratios measured side by side (not part of `make test`); BENCH_ARGS=--quick for <2 min.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Mutation testing of the pure core against its fast unit tests (not part of `make test`):
# each module's score, and a failure when one is below 90 % or a survivor is not explained in
# mutation/survivors.md. A fresh run each time: mutmut's cache keeps results of changed tests.
mutate: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children $${MUTATE_JOBS:-2}
	$(BIN)/python -m mutation.scores

clean:
	rm -rf $(VENV) mutants mailfax-data .pytest_cache .mypy_cache .ruff_cache docs/_build
