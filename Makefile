# Every target runs inside .venv, created here. torch is installed first as the CPU build
# (a bare "torch" requirement would pull a multi-GB CUDA build), llama-cpp-python is built from
# source once per machine (10-20 minutes on two cores; pip caches the wheel afterwards).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip
TORCH  ?= torch==2.13.0
export OMP_WAIT_POLICY := PASSIVE
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install test demo check-example bench-gate system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet "$(TORCH)" numpy
	$(PIP) install --quiet -e '.[llm,hub,bench,dev]'
	touch $@

# Debian packages that symdisc uses when present: bubblewrap (network isolation for non-root users)
# and dataset-fashion-mnist (the offline Fashion-MNIST). Skipped quietly without root or apt.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in bubblewrap dataset-fashion-mnist; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not apt-get install$$missing" >&2; \
	  fi; \
	fi

install: system-deps $(VENV)/.installed

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

check-example: install
	$(BIN)/symdisc check symdisc/rules/robust_zero_state.py
	$(BIN)/symdisc check symdisc/rules/adam.py --memory buffers
	! $(BIN)/symdisc check symdisc/rules/adam.py --memory scalar

bench-gate: install
	$(BIN)/python benchmarks/gate_latency.py

clean:
	rm -rf $(VENV) build dist *.egg-info
