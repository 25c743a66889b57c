# Two entry points: `make run` (set up and run the main job) and `make test`; `make sweep` runs a grid of
# settings; `make docs` and `make notebooks` build the documentation.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= quick
# Empty OUT: the default folder, one per setting and kind of data (runs/quick, runs/quick-stand-in, ...).
OUT ?=
# More options of the main job, e.g. ARGS="--set epochs=3 --set sparsity_weight=1e-2".
ARGS ?=
# Seeds (make run SEEDS=0,1,2: mean ± std over them) and a sweep's grid (make sweep GRID="sparsity_weight=1e-4,1e-2").
SEEDS ?=
GRID ?=
# Real datasets: $MINIDL_DATA if set, else a ../shared/data folder beside the checkout when there is one.
MINIDL_DATA ?= $(if $(wildcard ../shared/data/mnist),$(abspath ../shared/data))
export MINIDL_DATA
# Tests run in parallel on the available cores; one BLAS/Numba thread per worker avoids oversubscription.
PYTEST_WORKERS ?= auto

# Built documentation: the website and the executed notebooks (git-ignored).
BUILD ?= build
NOTEBOOKS := $(wildcard docs/notebooks/*.py)

.PHONY: run sweep lint test test-thorough venv install install-test docs notebooks clean mutate

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null

$(VENV)/.installed: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -e . && touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[test]" && touch $@ $(VENV)/.installed

$(VENV)/.installed-docs: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[test,docs]" && touch $@ $(VENV)/.installed-test $(VENV)/.installed
$(VENV)/.installed-mutate: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[mutate]" && touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m experiments run --preset $(PRESET) $(if $(OUT),--out $(OUT)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

# One run per point of GRID (several settings: separate them with spaces) and seed, in local worker processes;
# ARGS="--scheduler tcp://HOST:8786" runs them on a Dask cluster (needs: pip install -e ".[cluster]").
sweep: $(VENV)/.installed
	$(if $(GRID),,$(error make sweep needs GRID, e.g. make sweep GRID="sparsity_weight=1e-4,1e-3,1e-2"))
	$(PY) -m experiments sweep --preset $(PRESET) $(foreach item,$(GRID),--grid $(item)) \
	  $(if $(SEEDS),--seeds $(SEEDS)) $(if $(OUT),--out $(OUT)) $(ARGS)

# ruff's rules and mypy's types (settings in pyproject.toml), then whether the code is formatted as ruff format
# would write it; the test extra installs both tools.
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff format --check

test: $(VENV)/.installed-docs lint
	# the kernels must also be correct as plain Python (how a reader steps through them)
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q tests/test_kernels.py
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q tests
	# the documentation site must build without a warning (the notebooks ran in the suite above)
	$(MAKE) --no-print-directory docs MINIDL_DOCS_EXECUTE=false SITE=$(BUILD)/site-check

# The website, into build/site: derivations, notebooks with their outputs, API reference. Strict: any
# warning (a broken link, a missing page, a docstring mkdocstrings cannot read) fails the build.
SITE ?= $(BUILD)/site
MINIDL_DOCS_EXECUTE ?= true
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 MINIDL_DOCS_EXECUTE=$(MINIDL_DOCS_EXECUTE) \
	$(VENV)/bin/mkdocs build --strict --site-dir $(SITE)

# The notebooks executed, with their outputs, as .ipynb files in build/notebooks for Jupyter or VS Code.
notebooks: $(VENV)/.installed-docs
	mkdir -p $(BUILD)/notebooks
	for notebook in $(NOTEBOOKS); do \
	  $(VENV)/bin/jupytext --to ipynb --execute --output $(BUILD)/notebooks/$$(basename $$notebook .py).ipynb $$notebook \
	  || exit 1; \
	done

# The same suite with every property test drawing at least 2000 examples (THOROUGH_EXAMPLES=... to change
# it; see tests/conftest.py); it takes about half an hour on 2 cores and prints how many each test ran.
THOROUGH := --hypothesis-profile=thorough --hypothesis-show-statistics
test-thorough: $(VENV)/.installed-test
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q $(THOROUGH) tests/test_kernels.py
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q $(THOROUGH) tests

# Mutation testing of the gradient code (see docs/testing.md): mutmut changes one operator or constant
# at a time in minidl's layers, losses, penalty, optimizers and kernel twins, and runs the tests that call
# the changed function. Settings are in setup.cfg [mutmut]; results stay in mutants/ (git-ignored).
mutate: $(VENV)/.installed-mutate
	rm -rf mutants
	MINIDL_KERNELS=numpy OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) runs $(BUILD) .pytest_cache .hypothesis mutants
