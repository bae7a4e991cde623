"""End to end: the whole DAG on config/test.yaml through Snakemake, then its artifacts.

One session-scoped run (tests/conftest.py::pipeline_run) generates events with Pythia,
preselects, splits, builds pseudo-data, trains encoders, runs CATHODE, NPLM and the
paper-B checks; the tests below check what a physicist would check in the outputs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_snakemake
from salad.artifacts import read_provenance
from salad.config import load_config, load_yaml

CONFIG = load_config(REPO / "config" / "test.yaml")
PROCESSES = load_yaml(REPO / CONFIG["processes"])["processes"]
SAMPLES = CONFIG["samples"]


def test_preselection_cuts_hold(pipeline_run):
    cfg = CONFIG["preselect"]
    lo, hi = cfg["myy_range"]
    for sample in SAMPLES:
        frame = pd.read_parquet(pipeline_run / f"results/preselected/{sample}.parquet")
        assert len(frame) > 0, sample
        assert ((frame.myy > lo) & (frame.myy < hi)).all(), sample
        assert (frame.pt_y1 / frame.myy > cfg["pt_over_myy"][0]).all(), sample
        assert (frame.pt_y2 / frame.myy > cfg["pt_over_myy"][1]).all(), sample
        assert (frame.pt_y1 >= frame.pt_y2).all(), sample
        assert (frame.group == PROCESSES[sample]["group"]).all(), sample
        assert frame.event_id.is_unique, sample
        objects = np.stack(frame.objects.to_numpy()).reshape(-1, 11, 12)
        onehot = objects[..., 7:]
        assert set(np.unique(onehot.sum(-1))) <= {0.0, 1.0}
        assert (objects[onehot.sum(-1) == 0] == 0).all(), "padding rows must be zero"


def test_higgs_mass_peak(pipeline_run):
    frame = pd.read_parquet(pipeline_run / "results/preselected/ggH.parquet")
    q16, q50, q84 = np.percentile(frame.myy, [16, 50, 84])
    assert 124.0 < q50 < 126.0
    assert 0.8 < (q84 - q16) / 2 < 3.0, "ATLAS-like resolution: ~1.6 GeV half width"


def test_weights_sum_to_expected_yield(pipeline_run):
    for sample in SAMPLES:
        frame = pd.read_parquet(pipeline_run / f"results/preselected/{sample}.parquet")
        cutflow = json.loads((pipeline_run / f"results/preselected/{sample}.cutflow.json").read_text())
        final = cutflow["cuts"][-1]
        assert final["events"] == len(frame)
        assert frame.weight.sum() == pytest.approx(final["expected_per_ifb"], rel=1e-9)
        if PROCESSES[sample].get("xsec_fb") and sample in ("ggH",):  # unweighted sample
            expected = cutflow["xsec_fb"] * len(frame) / cutflow["n_events"]
            assert frame.weight.sum() == pytest.approx(expected, rel=1e-9)


def test_no_event_in_both_halves(pipeline_run):
    for sample in SAMPLES:
        split = pd.read_parquet(pipeline_run / f"results/split/{sample}.parquet")
        pre = pd.read_parquet(pipeline_run / f"results/preselected/{sample}.parquet")
        assert split.event_id.is_unique and set(split.event_id) == set(pre.event_id)
        assert set(split.subset) <= {"train", "val", "test", "data", "eval"}
    data_ids = set()
    for sample in SAMPLES:
        split = pd.read_parquet(pipeline_run / f"results/split/{sample}.parquet")
        data_ids |= set(split.event_id[split.subset == "data"])
    for path in (pipeline_run / "results/pseudodata").rglob("*.parquet"):
        pseudo = pd.read_parquet(path)
        assert pseudo.event_id.is_unique
        assert set(pseudo.event_id) <= data_ids, f"{path}: event from the encoder half"


def test_pseudodata_luminosity_and_injection(pipeline_run):
    lumi = CONFIG["pseudodata"]["luminosity_ifb"]
    for path in (pipeline_run / "results/pseudodata").rglob("*.json"):
        summary = json.loads(path.read_text())
        expected = sum(b["expected"] for b in summary["backgrounds"].values())
        assert summary["luminosity_ifb"] == lumi
        assert abs(summary["n_background"] - expected) < 5 * np.sqrt(expected) + 1
        target = summary["strength"] * np.sqrt(summary["B_SR_expected"])
        assert abs(summary["S_SR_injected"] - target) <= 1.0


def test_embeddings_cover_every_event(pipeline_run):
    """Every preselected event of the configured samples is embedded; of the evaluation-only
    samples exactly the signal-region events, and only by the setups CATHODE scores them with."""

    def ids_of(samples, region_only=False):
        frames = [
            pd.read_parquet(pipeline_run / f"results/preselected/{s}.parquet", columns=["event_id", "myy"])
            for s in samples
        ]
        frame = pd.concat(frames)
        if region_only:
            lo, hi = CONFIG["regions"]["signal_region"]
            frame = frame[(frame["myy"] >= lo) & (frame["myy"] < hi)]
        return set(frame["event_id"])

    main = ids_of(SAMPLES)
    evaluation = ids_of(CONFIG["evaluation_set"]["samples"], region_only=True)
    assert evaluation
    cathode = set((CONFIG.get("cathode") or {}).get("setups") or CONFIG["encoder"]["setups"])
    for setup in CONFIG["encoder"]["setups"]:
        frame = pd.read_parquet(pipeline_run / f"results/embeddings/{setup}/1.parquet")
        z = frame.filter(regex=r"^z\d+$").to_numpy()
        assert z.shape[1] == CONFIG["encoder"]["setups"][setup].get("latent_dim", 6)
        assert np.isfinite(z).all()
        assert set(frame.event_id) == (main | evaluation if setup in cathode else main), setup
        assert (pipeline_run / f"results/encoders/{setup}/1/history.parquet").exists()


def test_every_table_is_produced(pipeline_run):
    tables = pipeline_run / "results/tables"
    for name in (
        "cathode_sensitivity",
        "cathode_required_injection",
        "cathode_sculpting",
        "nplm",
        "linear_eval",
        "information",
    ):
        assert (tables / f"{name}.md").read_text().strip(), name
    sens = pd.read_parquet(tables / "cathode_sensitivity.parquet")
    assert set(sens.setup) == set((CONFIG.get("cathode") or {}).get("setups") or CONFIG["encoder"]["setups"])
    assert {"cathode", "iad", "supervised"} <= set(sens.method)
    # sensitivity at the injected strengths (the no-injection sets serve the sculpting check)
    assert set(sens.strength) == set(CONFIG["pseudodata"]["strengths"]) - {0.0}
    assert set(sens.eps_b) == set(CONFIG["evaluate"]["working_points"])
    for col in ("held_out", "n_bkg_eval", "sic_err", "sic_syst"):
        assert col in sens, col
    held = sens.groupby("setup")["held_out"].agg(set).to_dict()
    assert held["ID"] == {False} and held["bkg_only"] == {True}
    sculpt = pd.read_parquet(tables / "cathode_sculpting.parquet")
    assert ((sculpt.auc_mean > 0) & (sculpt.auc_mean < 1)).all()


def test_every_parquet_artifact_has_provenance(pipeline_run):
    paths = [p for p in (pipeline_run / "results").rglob("*.parquet") if "benchmarks" not in p.parts]
    assert len(paths) > 30
    for path in paths:
        prov = read_provenance(path)
        assert prov.get("salad_version") and prov.get("config_hash"), path


def test_plots_and_report_inputs_exist(pipeline_run):
    plots = list((pipeline_run / "results/plots").rglob("*.png"))
    assert len(plots) >= 8
    assert all(p.stat().st_size > 5000 for p in plots)


def test_rerun_is_a_no_op(pipeline_run):
    """Nothing changed, so a second invocation schedules no job."""
    proc = run_snakemake(pipeline_run, "--dry-run", "--quiet", "rules")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_evaluation_set_is_disjoint_and_consistent(pipeline_run):
    """The evaluation set shares no event with pseudo-data, encoder training/validation or the
    references' training; the evaluation-only continuum agrees in SR yield per fb^-1 with the
    main sample within statistics."""
    results = pipeline_run / "results"
    evaluation = pd.read_parquet(results / "evaluation/set.parquet")
    eval_ids = set(evaluation.event_id)
    assert (~evaluation.is_signal).any() and evaluation.is_signal.any()
    data_ids = set()
    for path in (results / "pseudodata").rglob("*.parquet"):
        data_ids |= set(pd.read_parquet(path).event_id)
    assert data_ids and not eval_ids & data_ids
    trained = set()  # encoder train/val/test and the `ref` share (references' training)
    for path in (results / "split").glob("*.parquet"):
        split = pd.read_parquet(path)
        trained |= set(split.event_id[split.subset.isin(["train", "val", "test", "ref"])])
        assert set(split.event_id[split.subset == "eval"]) >= eval_ids & set(split.event_id)
    assert not eval_ids & trained
    check = json.loads((results / "evaluation/set.json").read_text())["yield_check"]
    for sample in CONFIG["evaluation_set"]["samples"]:
        assert abs(check[sample]["pull"]) < 3, check[sample]
        assert check[sample]["events"] > check[sample]["main_events"]
