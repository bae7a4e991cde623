"""Editing one setting re-runs exactly the steps that read it, and what depends on them.

On the working directory of the finished end-to-end run (conftest `pipeline_run`, config/test.yaml)
a Snakemake dry run with one setting changed must schedule:
- a BDT hyperparameter (classifier.lightgbm.num_leaves): the classifiers and what reads their
  scores (evaluate, tables, plots), never the flows, encoders or the data preparation;
- the encoder width (encoder.defaults.width): encoder training onward, never generate,
  preselect, split, pseudo-data or the encoder-free baseline embeddings.
The checks use each scheduled job's `reason:`. A job re-runs either because its own parameters
changed (the rules that read the edited section) or because an input is re-made by another
scheduled job (downstream); nothing else may appear.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import yaml

from conftest import REPO, run_snakemake

TEST_CONFIG = REPO / "config" / "test.yaml"
PARAMS_CHANGED = "Params have changed since last execution"
DOWNSTREAM = "Input files updated by another job"
JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)*?)    reason: (.*)$", re.M)
DATA_PREPARATION = {"generate", "preselect", "split", "pseudodata"}


def dry_run(workdir: Path, config: Path) -> list[tuple[str, str]]:
    """(rule, reason) of every job a dry run on `config` schedules in `workdir`.

    Triggers: file times, parameters and inputs; the `code` trigger is left out so that an
    edit of a rule's source while the suite runs cannot mask what a config edit does.
    """
    proc = run_snakemake(workdir, "--dry-run", "--rerun-triggers", "mtime", "params", "input", config=config)
    return [(rule, reason) for rule, _, reason in JOB.findall(proc.stdout + proc.stderr)]


def edited_config(tmp_path: Path, edit) -> Path:
    """config/test.yaml with `edit(config)` applied, written to tmp_path."""
    config = copy.deepcopy(yaml.safe_load(TEST_CONFIG.read_text()))
    edit(config)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check_only_readers_and_downstream(jobs, readers: set[str]) -> Counter:
    """Every job re-runs for changed params (only `readers`) or as a downstream job; returns
    the jobs per rule."""
    for rule, reason in jobs:
        if reason.startswith(PARAMS_CHANGED):
            assert rule in readers, f"{rule} re-runs for changed params: {reason}"
        else:
            assert reason.startswith(DOWNSTREAM), f"{rule} re-runs for another reason: {reason}"
    return Counter(rule for rule, _ in jobs)


def count(workdir: Path, pattern: str) -> int:
    return len(list(workdir.glob(pattern)))


def test_unchanged_config_schedules_nothing(pipeline_run):
    assert dry_run(pipeline_run, TEST_CONFIG) == []


def test_bdt_hyperparameter_reruns_only_classification(pipeline_run, tmp_path):
    def edit(config):
        config["classifier"]["lightgbm"]["num_leaves"] += 4

    jobs = dry_run(pipeline_run, edited_config(tmp_path, edit))
    rules = check_only_readers_and_downstream(jobs, readers={"cathode"})
    # every CATHODE job (flows + template + BDTs of one encoder and dataset: the BDTs share
    # the job with the flows, so their settings re-fit the flows too) and every evaluation
    # re-runs ...
    assert rules["cathode"] == count(pipeline_run, "results/cathode/*/*/*/*/") > 0
    assert rules["evaluate"] > 0
    # ... and nothing upstream of them
    upstream = DATA_PREPARATION | {"train_encoder", "embed", "embed_baseline", "evaluation_set"}
    assert not upstream & set(rules), f"upstream jobs scheduled: {sorted(upstream & set(rules))}"


def test_encoder_width_reruns_training_onward(pipeline_run, tmp_path):
    def edit(config):
        config["encoder"]["defaults"]["width"] *= 2

    jobs = dry_run(pipeline_run, edited_config(tmp_path, edit))
    # `information` trains its fully supervised reference with the encoder's architecture
    rules = check_only_readers_and_downstream(jobs, readers={"train_encoder", "information"})
    setups_without_own_width = [
        name
        for name, setup in yaml.safe_load(TEST_CONFIG.read_text())["encoder"]["setups"].items()
        if "width" not in (setup or {})
    ]
    trained = sum(count(pipeline_run, f"results/encoders/{s}/*/model.pt") for s in setups_without_own_width)
    assert rules["train_encoder"] == trained > 0
    assert rules["embed"] == trained
    for stage in ("cathode", "evaluate"):
        assert rules[stage] > 0, f"{stage} not re-run after the encoder changed"
    never = DATA_PREPARATION | {"embed_baseline"}
    assert not never & set(rules), f"scheduled: {sorted(never & set(rules))}"
