"""Issue 7, reproducibility and provenance: preselect -> split -> pseudodata run twice on the same
input with the same config give byte-identical artifacts; every Parquet artifact carries
provenance (package version, stage, config hash), and `python -m salad inspect` shows it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import salad
from delphes_fixtures import random_events, write_delphes
from salad.__main__ import main
from salad.artifacts import config_hash, read_provenance

PRESELECT = {
    "preselect": dict(
        chunk_size=500,
        n_photon_candidates=3,
        higgs_mass=125.0,
        diphoton_trigger_pt=[35.0, 25.0],
        single_photon_trigger_pt=140.0,
        pt_over_myy=[0.4, 0.3],
        myy_range=[105.0, 160.0],
    )
}
SPLIT = {"split": {"seed": 1, "encoder_fraction": 0.5, "train_val_test": [0.6, 0.2, 0.2]}}
PSEUDO = {"pseudodata": {"luminosity_ifb": 2.0, "seed": 2}, "regions": {"signal_region": [120.0, 130.0]}}
SAMPLES = {"yy": (1, 0, 11), "ggH": (2, 1, 12), "Y400": (63, -6, 13)}  # code, group, seed


def run(*argv):
    assert main([str(a) for a in argv]) == 0


def chain(inputs: Path, procs: Path, out: Path, split_cfg=SPLIT) -> Path:
    """preselect + split every sample, then one pseudo-data set, under `out`."""
    for sample, (code, _, _) in SAMPLES.items():
        pre = out / "preselected" / f"{sample}.parquet"
        run(
            "preselect",
            "--input",
            inputs / f"{sample}.root",
            "--sample",
            sample,
            "--processes",
            procs,
            "--output",
            pre,
            "--cutflow",
            out / "preselected" / f"{sample}.cutflow.json",
            "--config",
            json.dumps(PRESELECT),
        )
        run(
            "split",
            "--input",
            pre,
            "--code",
            code,
            "--output",
            out / "split" / f"{sample}.parquet",
            "--config",
            json.dumps(split_cfg),
        )
    pair = lambda s: f"{out}/preselected/{s}.parquet:{out}/split/{s}.parquet"  # noqa: E731
    run(
        "pseudodata",
        "--background",
        pair("yy"),
        pair("ggH"),
        "--signal",
        pair("Y400"),
        "--strength",
        "3",
        "--instance",
        "0",
        "--output",
        out / "pseudodata" / "0.parquet",
        "--summary",
        out / "pseudodata" / "0.json",
        "--config",
        json.dumps(PSEUDO),
    )
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    inputs = root / "inputs"
    inputs.mkdir()
    lines = ["processes:"]
    for sample, (code, group, seed) in SAMPLES.items():
        write_delphes(
            inputs / f"{sample}.root", random_events(1500, seed=seed, weights="random"), basket_size=400
        )
        lines.append(f"  {sample}: {{code: {code}, group: {group}, xsec_fb: 10.0}}")
    procs = root / "processes.yaml"
    procs.write_text("\n".join(lines) + "\n")
    first, second = (chain(inputs, procs, root / name) for name in ("a", "b"))
    other = chain(inputs, procs, root / "c", split_cfg={"split": {**SPLIT["split"], "seed": 9}})
    return first, second, other


def artifacts(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_input_same_config_gives_identical_files(runs):
    first, second, _ = runs
    names = artifacts(first)
    assert names == artifacts(second) and len(names) == 3 * 3 + 2
    for name in names:
        a, b = (first / name).read_bytes(), (second / name).read_bytes()
        if name.name.endswith(".cutflow.json"):  # holds the run time; everything else must agree
            a, b = ({k: v for k, v in json.loads(x).items() if k not in ("seconds", "files")} for x in (a, b))
        assert a == b, name


def test_another_seed_changes_the_split_and_its_config_hash(runs):
    first, _, other = runs
    assert (first / "split" / "yy.parquet").read_bytes() != (other / "split" / "yy.parquet").read_bytes()
    assert (
        read_provenance(first / "split" / "yy.parquet")["config_hash"]
        != read_provenance(other / "split" / "yy.parquet")["config_hash"]
    )
    # the upstream step did not change, and neither did its provenance
    assert (first / "preselected" / "yy.parquet").read_bytes() == (
        other / "preselected" / "yy.parquet"
    ).read_bytes()


@pytest.mark.parametrize(
    "name,stage,cfg",
    [
        ("preselected/ggH.parquet", "preselect", PRESELECT),
        ("split/Y400.parquet", "split", SPLIT),
        ("pseudodata/0.parquet", "pseudodata", PSEUDO),
    ],
)
def test_every_artifact_carries_provenance(runs, name, stage, cfg):
    prov = read_provenance(runs[0] / name)
    assert prov["salad_version"] == salad.__version__
    assert prov["stage"] == stage
    assert prov["config_hash"] == config_hash(cfg)


def test_all_parquet_files_of_the_chain_have_provenance(runs):
    files = sorted(runs[0].rglob("*.parquet"))
    assert len(files) == 7
    for path in files:
        assert {"salad_version", "stage", "config_hash"} <= set(read_provenance(path)), path


def test_inspect_cli_shows_provenance_rows_and_columns(runs):
    path = runs[0] / "pseudodata" / "0.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "salad", "inspect", str(path), str(runs[0] / "split" / "yy.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    blocks = proc.stdout.split(str(runs[0] / "split" / "yy.parquet"))
    head = blocks[0]
    prov = read_provenance(path)
    assert str(path) in head and f"rows: {len(pd.read_parquet(path))}" in head
    assert json.dumps(prov, sort_keys=True) in head
    assert f'"config_hash": "{config_hash(PSEUDO)}"' in head
    assert f'"salad_version": "{salad.__version__}"' in head
    for column in ("event_id", "sample", "myy", "is_signal", "group"):
        assert f"column {column}:" in head
    assert '"stage": "split"' in blocks[1]


def test_inspect_missing_or_foreign_file_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope.parquet"
    assert main(["inspect", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"salad: error: {missing}: file not found")
    text = tmp_path / "notes.txt"
    text.write_text("not parquet")
    assert main(["inspect", str(text)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{text}: not a readable Parquet file" in err
