# salad — set-up, run and test. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.salad-installed
CORES  ?= all
CONFIG ?= config/config.yaml

.PHONY: setup run reproduce test test-fast lint report clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

## run the whole pipeline on the laptop default (results/ holds tables, plots, report)
run: setup
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --profile workflow/profiles/laptop
	$(BIN)/snakemake --cores 1 --configfile $(CONFIG) --report results/report.html

## paper A's orderings with error bars (config/reproduce.yaml: 3 encoder seeds per setup, IP/EP
## held-out signals, the 1 sigma point; estimated ~95 min on 2 cores, see the file); writes
## results/tables/paper_comparison.md (copy it into docs/results.md with date, commit, wall time)
reproduce: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/reproduce.yaml --profile workflow/profiles/laptop
	$(BIN)/snakemake --cores 1 --configfile config/reproduce.yaml --report results/report.html

## set up and run the test suite (unit tests + end-to-end runs on config/test.yaml)
test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/snakemake --lint --configfile $(CONFIG)

clean:
	rm -rf results .snakemake

## run the pipeline on config/test.yaml through a real single-node SLURM (workflow/profiles/slurm)
## and compare with a local run; checks sbatch submissions = the dry run's planned job count;
## needs root or sudo (installs slurm-wlm + munge if missing); TARGETS="..." for a quick subset
.PHONY: test-cluster
test-cluster: setup
	tests/cluster/run_cluster_test.sh

## benchmark every compute-heavy stage on this machine (one thread each; ~10 min;
## BENCH_ARGS=--quick for a smoke run); prints a Markdown table (docs/benchmarks.md)
BENCH_ARGS ?=
.PHONY: bench
bench: setup
	$(BIN)/python -m salad.bench $(BENCH_ARGS)

## mutation testing of the physics core with mutmut (config: [tool.mutmut] in pyproject.toml;
## results in docs/testing.md). Not part of `make test`; about an hour on 2 cores.
## MUTANTS='salad.cathode.metrics*' restricts the run; `.venv/bin/mutmut results` lists survivors.
MUTANTS ?=
.PHONY: mutate
mutate: setup
	env -u PYTHONPATH OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children $${MUTATE_JOBS:-2} $(MUTANTS)
	$(BIN)/mutmut results
