# The two commands of README.md: `make run` and `make test`. Both set up .venv first.
# Any Python 3.11-3.13: `make test PYTHON=python3.13`. Each Python has its own lock file,
# constraints/pyX.Y.txt; VENV defaults to .venv (set it to keep one per Python).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYVER  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK   := constraints/py$(PYVER).txt

.PHONY: run test setup lint clean lock luigid bench check-python

check-python:
	@case "$(PYVER)" in \
	  3.11|3.12|3.13) ;; \
	  "") echo "mlcd: '$(PYTHON)' does not run; set PYTHON to a Python 3.11-3.13 (make test PYTHON=python3.13)" >&2; exit 2 ;; \
	  3.14) echo "mlcd: Python 3.14 is not supported yet: luigi 3.8.1, the newest release, does not install on it; set PYTHON to a Python 3.11-3.13" >&2; exit 2 ;; \
	  *) echo "mlcd: $(PYTHON) is Python $(PYVER); mlcd supports 3.11-3.13: set PYTHON (make test PYTHON=python3.13)" >&2; exit 2 ;; \
	esac
	@test -f $(LOCK) || { echo "mlcd: no lock file $(LOCK); write one with 'make lock PYTHON=$(PYTHON)'" >&2; exit 2; }
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PYVER)" ]; then \
	  echo "mlcd: $(VENV) was made with another Python; remove it (rm -rf $(VENV)) or set VENV" >&2; exit 2; fi

$(BIN)/mlcd: setup.cfg pyproject.toml $(LOCK)
	$(MAKE) --no-print-directory check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26"
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[test]"
	touch $@

setup: check-python $(BIN)/mlcd

run: setup
	$(BIN)/mlcd run --config config/pipeline.yaml

test: setup
	$(BIN)/python -m pytest

# ruff, mypy, and import-linter for the layering of docs/architecture.md (pyproject.toml).
lint: setup
	$(BIN)/python -m pip install --quiet -c $(LOCK) ruff mypy import-linter
	$(BIN)/ruff check mlcd tasks tests benchmarks
	$(BIN)/mypy mlcd tasks
	$(BIN)/lint-imports

# What mlcd costs on top of the work it runs, and mlcd against gokart and a plain script
# (peers.py makes benchmarks/.venv-gokart the first time), and how to keep a snapshot (Parquet or
# Arrow IPC): about 12 min on 2 cores, of which the peers are about 7 (5M rows most of it):
# docs/performance.md.
bench: setup
	$(BIN)/python benchmarks/pipeline_cost.py
	$(BIN)/python benchmarks/s3_vs_local.py
	$(BIN)/python benchmarks/peers.py
	$(BIN)/python benchmarks/frame_formats.py

# Luigi's central scheduler and web UI on http://127.0.0.1:8082 (loopback only: no auth).
luigid: setup
	mkdir -p .mlcd/luigid/logs
	$(BIN)/luigid --address 127.0.0.1 --port 8082 --logdir .mlcd/luigid/logs --state-path .mlcd/luigid/state.pickle

# Write this Python's lock file from a fresh install of the newest releases setup.cfg allows
# (and the lint tools), then check that it installs on every patch release of this Python.
lock:
	@case "$(PYVER)" in 3.11|3.12|3.13) ;; *) echo "mlcd: set PYTHON to a Python 3.11-3.13" >&2; exit 2 ;; esac
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip<26"
	.lock-venv/bin/python -m pip install --quiet -e ".[test]" ruff mypy import-linter
	{ echo "# Exact versions of everything mlcd installs on Python $(PYVER) (make installs with -c this file)."; \
	  echo "# Regenerate with \`make lock PYTHON=python$(PYVER)\` after changing a dependency: docs/decisions.md."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v -e "^pip==" -e "^mlcd"; } > $(LOCK)
	.lock-venv/bin/python -m pytest -q -p no:cacheprovider tests/test_locks.py
	rm -rf .lock-venv

clean:
	rm -rf .mlcd
