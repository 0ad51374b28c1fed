# Set-up and entry points. `make run` and `make test` each create the venv when it is
# missing or older than the dependency files, then run. CI runs `make test` (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run pull test test-fast slurm-test-packages lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[workflow,torch,test,versions,lint]"
	touch $@

run: $(STAMP)
	$(BIN)/snakemake --cores all --workflow-profile workflow/profiles/local
	$(BIN)/snakemake --report results/report/report.html

# After `git clone` or `git checkout`: that commit's data and models from the DVC remote,
# then all of them marked up to date for Snakemake, which would otherwise remake them (a fresh
# clone has no .snakemake records, and DVC writes files in no particular order). Refused when
# the workspace differs from dvc.lock, so that stale results are never marked up to date.
pull: $(STAMP)
	$(BIN)/dvc pull
	@$(BIN)/dvc status --quiet || { $(BIN)/dvc status; \
	  echo "make pull: the workspace differs from dvc.lock (above); nothing marked up to date" >&2; exit 1; }
	$(BIN)/snakemake --touch --forceall --cores 1

# The SLURM tests start a real single-node cluster from Debian's packages: installed here when
# missing and apt-get is usable (root); otherwise those tests skip, naming what is missing.
test: $(STAMP) lint slurm-test-packages
	$(BIN)/pytest

# The inner loop: the unit and bad-input tests, without the Snakemake, DVC and SLURM runs
# (marker `workflow`) and the few unit tests that train or synthesize for long (`slow`), on
# two processes (pytest-xdist).
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not workflow and not slow"

slurm-test-packages:
	@sh tests/support/slurm/install-debian-packages.sh

# Style and static checks (CI runs them first, through `make test`): ruff lints the Python
# (pyflakes, pycodestyle, import order, bugbear, pyupgrade) and checks its format; snakefmt
# the Snakemake files; snakemake --lint the workflow with each config.
PYTHON_SOURCES := src tests benchmarks
SNAKEMAKE_SOURCES := Snakefile workflow/rules
lint: $(STAMP)
	$(BIN)/ruff check $(PYTHON_SOURCES)
	$(BIN)/ruff format --check $(PYTHON_SOURCES)
	$(BIN)/snakefmt --check $(SNAKEMAKE_SOURCES)
	$(BIN)/snakemake --lint
	for override in workflow/configs/*.yaml; do $(BIN)/snakemake --lint --configfile $$override || exit 1; done

bench: $(STAMP)
	$(BIN)/python benchmarks/convert_resample.py
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/dag.py
	$(BIN)/python benchmarks/download.py

clean:
	rm -rf results logs .snakemake
