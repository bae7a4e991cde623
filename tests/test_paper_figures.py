"""Paper A's figure set: the leave-one-model-out EP family and the figure targets of config/paper.yaml."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from salad.config import load_processes
from salad.encoder.setups import expand_setups, family_groups, resolve_setup
from salad.errors import SaladError

REPO = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
PROCESSES = load_processes(REPO / "config" / "processes.yaml")
GROUPS = {s: PROCESSES[s]["group"] for s in PAPER["samples"]}
FIGURES = ["fig3", "fig4", "fig5", "fig6", "fig7", "ref22"]


def test_family_expansion_from_sample_groups():
    enc = {"setups": {"ID": {}}, "leave_one_model_out": {"prefix": "EP_m", "settings": {"kl_weight": 0.2}}}
    groups = {"yy": 0, "ggH": 1, "C1N2_200": -1, "C1N2_300": -1, "Y400": -6}
    out = expand_setups(enc, groups)
    assert list(out["setups"]) == ["ID", "EP_m1", "EP_m6"]
    assert out["setups"]["EP_m6"] == {"kl_weight": 0.2, "holdout_groups": [-6]}
    assert enc["setups"] == {"ID": {}}  # input untouched
    assert family_groups(enc, groups) == {"EP_m1": -1, "EP_m6": -6}
    resolved = resolve_setup(out, "EP_m1", groups)
    assert set(resolved["train_samples"]) == {"yy", "ggH", "Y400"}
    assert expand_setups({"setups": {"ID": {}}}, groups) == {"setups": {"ID": {}}}
    assert family_groups({"setups": {"ID": {}}}, groups) == {}
    with pytest.raises(SaladError, match="EP_m1: name taken"):
        expand_setups({**enc, "setups": {"EP_m1": {}}}, groups)


def test_paper_setups_hold_out_what_the_figures_need():
    enc = expand_setups(PAPER["encoder"], GROUPS)
    held = {name: resolve_setup(enc, name, GROUPS) for name in enc["setups"]}
    bsm = sorted({g for g in GROUPS.values() if g < 0}, reverse=True)
    family = family_groups(PAPER["encoder"], GROUPS)
    assert family == {f"EP_m{-g}": g for g in bsm} and len(family) == 8
    for name, group in family.items():  # fig. 7: each model left out once
        assert {GROUPS[s] for s in GROUPS if s not in held[name]["train_samples"]} == {group}
    ep_out = {GROUPS[s] for s in GROUPS if s not in held["EP"]["train_samples"]}
    assert ep_out == {-4, -8}  # fig. 6: RPV (chi1+- chi1^0), RPC stop
    assert {s for s in GROUPS if s not in held["IP"]["train_samples"]} == {"Y400", "C1N2_200"}  # fig. 5
    figs = PAPER["figures"]
    assert sorted(figs) == sorted(FIGURES)
    signals = PAPER["pseudodata"]["signals"]
    assert {GROUPS[s] for s in signals} == set(bsm)  # fig. 7: every model injected
    for s in figs["fig6"]["signals"]:
        assert s not in held["EP"]["train_samples"] and s in signals
    for s in figs["fig5"]["signals"]:
        assert s not in held["IP"]["train_samples"] and s in signals
    assert "C1N1RPV_200" in figs["fig6"]["signals"]
    assert figs["fig4"]["working_points"] == [0.005, 0.001]
    assert "baseline_ref22" in PAPER["cathode"]["setups"]


def _job_counts(text):
    counts = {}
    block = text.split("Job stats:", 1)[1] if "Job stats:" in text else ""
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
        elif counts and not line.strip():
            break
    return counts


def test_paper_dry_run_plans_the_figure_targets(tmp_path):
    """`snakemake -n` of config/paper.yaml restricted to the figure targets, sizes shrunk (one seed,
    one instance, strengths 0 and 1, one NPLM representation) so that the DAG builds in seconds."""
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    cfg["processes"] = str(REPO / "config" / "processes.yaml")
    cfg["encoder"]["seeds"] = [1]
    cfg["baselines"]["seeds"] = [1]
    cfg["pseudodata"].update(strengths=[0.0, 1.0], instances=1)
    cfg["nplm"].update(representations=["baseline_leading"], toys=100)
    cfg["linear_eval"]["representations"] = ["baseline_leading"]
    cfg["dimension_scan"]["families"] = {}
    path = tmp_path / "paper_small.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    targets = [f"figure_{f}" for f in FIGURES] + ["results/tables/paper_comparison.md"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            *targets,
            "-n",
            "--quiet",
            "rules",
            "--cores",
            "1",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path / "wd"),
            "--configfile",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = _job_counts(out)
    for f in FIGURES:
        assert jobs.get(f"figure_{f}") == 1, jobs
    assert jobs["paper_figure_sic"] == 2 + 2 + 2 + 2  # figs. 4, 5, 6, ref22: two signals each
    assert jobs["paper_figure_required"] == 1 and jobs["paper_figure_sculpting"] == 1
    assert jobs["paper_comparison"] == 1
    # encoders: ID IP EP bkg_only ID_d2 ID_d4 + EP_m1..EP_m8 (one seed each)
    assert jobs["train_encoder"] == 6 + 8
    # evaluate: one job per setup (6 encoders + baseline_ref22 + EP_m1..EP_m8), every signal it
    # is evaluated on inside that job
    assert jobs["evaluate"] == 7 + 8
