# Two entry points: `make run` (set up and run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= quick
OUT ?= runs/$(PRESET)
# Real datasets: $MINIDL_DATA if set, else a ../shared/data folder beside the checkout when there is one.
MINIDL_DATA ?= $(if $(wildcard ../shared/data/mnist),$(abspath ../shared/data))
export MINIDL_DATA
# Tests run in parallel on the available cores; one BLAS/Numba thread per worker avoids oversubscription.
PYTEST_WORKERS ?= auto

.PHONY: run test venv install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null

$(VENV)/.installed: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -e . && touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[test]" && touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m experiments run --preset $(PRESET) --out $(OUT)

test: $(VENV)/.installed-test
	# the kernels must also be correct as plain Python (how a reader steps through them)
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q tests/test_kernels.py tests/test_fast_kernels.py
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q tests

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
