# The two commands of README.md: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test setup lint clean lock luigid bench

$(BIN)/mlcd: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

setup: $(BIN)/mlcd

run: setup
	$(BIN)/mlcd run --config config/pipeline.yaml

test: setup
	$(BIN)/python -m pytest

# ruff, mypy, and import-linter for the layering of docs/architecture.md (pyproject.toml).
lint: setup
	$(BIN)/python -m pip install --quiet -c constraints.txt ruff mypy import-linter
	$(BIN)/ruff check mlcd tasks tests benchmarks
	$(BIN)/mypy mlcd tasks
	$(BIN)/lint-imports

# What mlcd costs on top of the work it runs (about 16 min on 2 cores): docs/performance.md.
bench: setup
	$(BIN)/python benchmarks/pipeline_cost.py
	$(BIN)/python benchmarks/s3_vs_local.py

# Luigi's central scheduler and web UI on http://127.0.0.1:8082 (loopback only: no auth).
luigid: setup
	mkdir -p .mlcd/luigid/logs
	$(BIN)/luigid --address 127.0.0.1 --port 8082 --logdir .mlcd/luigid/logs --state-path .mlcd/luigid/state.pickle

# Regenerate constraints.txt from the current environment after changing a dependency.
lock:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v -e "^pip==" -e "^mlcd" > constraints.txt

clean:
	rm -rf .mlcd
