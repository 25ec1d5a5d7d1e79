# The two quick-start commands: `make demo` and `make test` (each sets up .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast bench lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned: this machine's index serves 2.13.0 as a CPU build from a local file;
	# an unpinned torch would pull gigabytes of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[torch,test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/graphkit apply recipes/ecapa.yaml -o out/ecapa_tdnn

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed  # the suite without the tests marked slow (full model exports and runs)
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_conv1d_chain.py
	$(PY) benchmarks/bench_apply.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
