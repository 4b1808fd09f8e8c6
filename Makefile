# Two entry points do all set-up on a fresh machine: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch and torchvision first, as a matching pair (CPU machines take them from the local wheel cache)
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

.PHONY: setup demo test test-slow clean bench
setup: $(BIN)/snakemake

## The main job: the default benchmark DAG on the bundled synthetic demo scene, ending in results/report/.
demo: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/local

## The benchmark on a GPU node: every bench method at every corruption level over the bench config's scenes, ending in
## results/bench_gpu/report/bench/ (README, "Benchmark"). BENCH_LEVELS=clean runs only the listed levels.
BENCH_CONFIG ?= config/bench_gpu.yaml
BENCH_LEVELS ?=
GPUS ?= 1
bench: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake bench --cores $(CORES) --resources gpu=$(GPUS) \
	  --profile workflow/profiles/local --configfile $(BENCH_CONFIG) \
	  $(if $(BENCH_LEVELS),--config 'bench={levels: [$(BENCH_LEVELS)]}')

## The tests (slow end-to-end runs excluded; `make test-slow` runs them). PYTEST_ARGS="-n 2 --dist loadgroup" runs them
## on pytest-xdist workers (tests/conftest.py groups them; measured slower than one process on 2 cores).
PYTEST_ARGS ?=
test: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slow

clean:
	rm -rf results .snakemake
