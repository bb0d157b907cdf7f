# The two commands: `make demo` (reproduce the default paper claims on CPU) and `make test`.
# Each creates .venv when missing and installs what it needs, so a fresh machine with Python >= 3.10 and pip suffices.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Official PyTorch references for the parity tests. Installed with --no-deps: only their pure-PyTorch files are used.
PARITY_REFS := lion-pytorch galore-torch q-galore-torch libauc pytorch-metric-learning

.PHONY: demo test test-slow clean papers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.base-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.base-installed
	$(PIP) install -q -e '.[test]'
	@# torch==2.13.0 is the CPU build on the project's machines; elsewhere parity tests skip and say why.
	-$(PIP) install -q torch==2.13.0 && $(PIP) install -q --no-deps $(PARITY_REFS)
	touch $@

# Exit status 1 means some claims failed, every run completed and the table was written: the demo itself worked.
# Anything else fails the target: 2 usage error, 3 a run crashed, 4 an I/O failure (e.g. `results` is a file),
# 130 interrupted; and 1 without a claims table written by this run (see `python -m experiments --help`, README).
demo: $(VENV)/.base-installed
	@stamp=$$(mktemp); $(BIN)/python -m experiments run --demo; rc=$$?; \
	if [ $$rc -eq 1 ] && [ -n "$$(find results/claims.txt -newer $$stamp 2>/dev/null)" ]; then \
	  echo "(some claims failed: see the NO rows above)"; rc=0; \
	elif [ $$rc -eq 1 ]; then echo "make demo: no claims table was written: the demo did not complete" >&2; fi; \
	rm -f $$stamp; exit $$rc

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -n 2 --durations=15

test-slow: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m slow

papers: $(VENV)/.base-installed
	$(BIN)/python -m jaxlib_methods.papers

clean:
	rm -rf $(VENV) results .pytest_cache
