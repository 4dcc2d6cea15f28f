# mailfax: `make run` starts the gateway on the embedded default; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint chaos bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/mailfax serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Larger crash and fault runs than CI's (MAILFAX_CHAOS_SCALE=1), then the same-number runs ten
# times over (MAILFAX_CHAOS_RUNS); prints the invariants checked.
chaos: $(STAMP)
	MAILFAX_CHAOS_SCALE=$${MAILFAX_CHAOS_SCALE:-6} $(BIN)/pytest -s -q tests/test_chaos.py
	MAILFAX_CHAOS_RUNS=$${MAILFAX_CHAOS_RUNS:-10} $(BIN)/pytest -s -q tests/test_chaos.py -k same_number

# Figures and ratios measured side by side (not part of `make test`); BENCH_ARGS=--quick for <2 min.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) mailfax-data .pytest_cache .mypy_cache .ruff_cache
