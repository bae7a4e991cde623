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
## held-out signals, the 1 sigma point; 34 min on the idle 2-core machine, docs/results.md); writes
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
## results in docs/testing.md). Not part of `make test`; several hours on 2 cores.
## CORE_MUTANTS: the physics functions of each core module (CLIs, plotting, I/O plumbing and the
## training loops of flow / classify are not mutated: see docs/testing.md).
## MUTANTS='salad.cathode.metrics*' restricts the run; `.venv/bin/mutmut results` lists survivors.
CORE_MUTANTS := salad.cathode.metrics.x_* salad.encoder.losses.x* \
  salad.split.x__mix* salad.split.x_hash_uniform* salad.split.x_assign* salad.split.x_split_frame* \
  salad.encoder.setups.x_* \
  salad.cathode.flow.x_scale_mass* salad.cathode.flow.x_split_and_scale* salad.cathode.flow.x__nll* \
  salad.cathode.template.x_sample_masses* salad.cathode.template.x_build* \
  salad.cathode.classify.x_assign_folds* salad.cathode.classify.x_kfold_scores* \
  salad.nplm.x_test_statistic* salad.nplm.x_significance* salad.nplm.x_z_from_logp* \
  salad.nplm.x_chi2_logsf* salad.nplm.x_observed_z* salad.nplm.x_chi2_fit* \
  salad.cathode.evaluate.x_working_point_rows* salad.cathode.evaluate.x_summarise* \
  salad.cathode.evaluate.x_sensitivity* \
  salad.preselect.x_select* salad.preselect.x__mass* salad.preselect.x_delta_phi* \
  salad.preselect.x__four_vector* salad.artifacts.x_read_parquet* salad.artifacts.x__check_column* \
  salad.pseudodata.x_load_sample* salad.pseudodata.x_inject_signal* salad.pseudodata.x_draw_background* \
  salad.pseudodata.x_weighted_order* salad.pseudodata.x_data_half* salad.pseudodata.x_in_region* \
  salad.pseudodata.x_build*
MUTANTS ?= $(CORE_MUTANTS)
.PHONY: mutate
mutate: setup
	env -u PYTHONPATH OMP_NUM_THREADS=1 nice -n $${MUTATE_NICE:-0} $(BIN)/mutmut run --max-children $${MUTATE_JOBS:-2} $(MUTANTS)
	$(BIN)/mutmut results
