# The two commands of the README: `make run` (the embedded default end to end) and `make test`.
# Both set up .venv from the project's own pinned files first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# pytest-xdist workers of `make test`, a test module each at a time (tests/conftest.py: the runs they share are built once)
TEST_WORKERS ?= 2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run validate test test-deps lint bench docs clean

setup: $(VENV)/.installed slurm

# `snakemake --profile slurm` looks the bare name up in ./slurm (then ~/.config/snakemake): link it here.
slurm:
	ln -sfn profiles/slurm slurm

# torch first, alone: `torch==2.13.0` takes the CPU wheel on this disk instead of a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The run, then the Snakemake report (results/report.html), then the run's summary (results/summary.txt).
run: setup
	CLIMB_PRINT_SUMMARY=0 $(BIN)/snakemake --cores $(CORES)
	@mkdir -p results/logs && $(BIN)/snakemake --cores $(CORES) --report results/report.html > results/logs/report.log 2>&1 \
	  || { tail -20 results/logs/report.log; exit 1; }
	@$(BIN)/python -m climb.report.summary results/summary.txt results/report.html

# The validation table (results/validation/validation_table.md): target models on every strategy's final mixture.
validate: setup
	$(BIN)/snakemake --cores $(CORES) validate

# System packages some tests use: Debian's chromium (the report renders in it). The SLURM test installs
# its own daemons (tests/slurm/start.sh). Installed only when missing and when running as root (CI is).
test-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the report rendering test skips (fails when CI=true)"; }

test: setup test-deps
	$(BIN)/ruff check climb scripts tests
	$(BIN)/snakemake --lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The benchmark suite (climb/bench): writes bench/results.json and prints one Markdown table.
# `make bench ONLY=embed,kmeans SIZE=small`; items: embed kmeans proxy predictor search dag end_to_end memory
# quality outcome dedup; SIZE tiny | small | full (default).
SIZE ?= full
ONLY ?=
bench: setup
	$(BIN)/python -m climb.bench --size $(SIZE) $(if $(ONLY),--only $(ONLY)) --out bench/results.json --markdown bench/results.md

lint: setup
	$(BIN)/ruff check climb scripts tests
	$(BIN)/snakemake --lint

# Generated documentation: the config reference (from the schema) and the rule graph (graphviz's dot).
docs: setup
	$(BIN)/python -m climb.core.config docs/config.md
	$(BIN)/snakemake --rulegraph dot all validate 2>/dev/null | dot -Tsvg > docs/.rulegraph.svg && mv docs/.rulegraph.svg docs/rulegraph.svg

clean:
	rm -rf results .snakemake
