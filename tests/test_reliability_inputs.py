"""Issue 7, bad input: every case ends with one line `salad: error: <file or key>: <problem>`
on stderr, a non-zero exit status, and no output (complete or partial) left behind.

Stages run through `salad.__main__.main([...])` (what `python -m salad` calls); one case runs a
real subprocess so import-time noise on stderr would be caught too; config errors go through
`snakemake -n` because validation there is Snakemake's.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from delphes_fixtures import events_from_dicts, random_events, write_delphes
from encoder_fixtures import toy_paths, write_toy_inputs
from salad.__main__ import main
from salad.artifacts import provenance, write_parquet
from salad.encoder.setups import resolve_setup
from salad.errors import SaladError

REPO = Path(__file__).resolve().parents[1]
PRESELECT = dict(
    chunk_size=200,
    n_photon_candidates=3,
    higgs_mass=125.0,
    diphoton_trigger_pt=[35.0, 25.0],
    single_photon_trigger_pt=140.0,
    pt_over_myy=[0.4, 0.3],
    myy_range=[105.0, 160.0],
)
PSEUDO_CFG = {"pseudodata": {"luminosity_ifb": 2.0, "seed": 2}, "regions": {"signal_region": [120.0, 130.0]}}
TOY_SAMPLES = {"yy": 300, "ggH": 300, "Y400": 300}


def fails_cleanly(capsys, argv, *names, outputs=()):
    """Run a stage; assert exit 1, exactly one `salad: error:` line naming `names`, no outputs."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 1, captured
    assert len(lines) == 1 and lines[0].startswith("salad: error: "), lines
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    for out in map(Path, outputs):
        assert not out.exists(), out
        if out.parent.exists():  # no temporary leftovers of an interrupted atomic write
            assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]
    return lines[0]


# --------------------------------------------------------------------------- preselect
@pytest.fixture(scope="module")
def delphes(tmp_path_factory):
    root = tmp_path_factory.mktemp("delphes")
    procs = root / "processes.yaml"
    procs.write_text("processes:\n  ggH: {code: 2, group: 1, xsec_fb: 10.0}\n")
    good = write_delphes(root / "good.root", random_events(1500, seed=3), basket_size=300)
    return root, procs, good


def preselect_argv(inp, procs, out_dir):
    return [
        "preselect",
        "--input",
        inp,
        "--sample",
        "ggH",
        "--processes",
        procs,
        "--output",
        out_dir / "ggH.parquet",
        "--cutflow",
        out_dir / "ggH.cutflow.json",
        "--config",
        json.dumps({"preselect": PRESELECT}),
    ]


def bad_root_files(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """{case: (file, words the message must contain)}."""
    events = random_events(60, seed=4)
    data = good.read_bytes()
    (root / "truncated.root").write_bytes(data[: len(data) // 2])
    (root / "garbage.root").write_bytes(bytes(range(256)) * 40)
    (root / "empty.root").write_bytes(b"")
    low = {"Photon": [dict(PT=20.0, Eta=0.0, Phi=0.0, E=20.0), dict(PT=10.0, Eta=1.0, Phi=2.0, E=15.4)]}
    return {
        "missing": (root / "nope.root", "file not found"),
        "truncated": (root / "truncated.root", ""),
        "garbage": (root / "garbage.root", "not a readable ROOT file"),
        "empty": (root / "empty.root", "not a readable ROOT file"),
        "no_tree": (write_delphes(root / "tree.root", events, tree="Events"), "no tree 'Delphes'"),
        "no_branch": (
            write_delphes(root / "branch.root", events, drop=["Jet/Jet.Mass"]),
            "no branch Jet/Jet.Mass",
        ),
        "none_pass": (
            write_delphes(root / "nopass.root", events_from_dicts([low] * 9)),
            "0 of 9 events passed",
        ),
    }


CASES = ["missing", "truncated", "garbage", "empty", "no_tree", "no_branch", "none_pass"]


@pytest.mark.parametrize("case", CASES)
def test_preselect_bad_root_input(delphes, tmp_path, capsys, case):
    root, procs, good = delphes
    path, words = bad_root_files(root, good)[case]
    out = tmp_path / "out"
    line = fails_cleanly(
        capsys,
        preselect_argv(path, procs, out),
        path,
        words,
        outputs=[out / "ggH.parquet", out / "ggH.cutflow.json"],
    )
    assert "Traceback" not in line


def test_failed_rerun_keeps_the_previous_output(delphes, tmp_path, capsys):
    """Nothing already written is lost: a failing rerun leaves the earlier outputs untouched."""
    root, procs, good = delphes
    out = tmp_path / "out"
    assert main([str(a) for a in preselect_argv(good, procs, out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    truncated, _ = bad_root_files(root, good)["truncated"]
    fails_cleanly(capsys, preselect_argv(truncated, procs, out), truncated)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_subprocess_stderr_is_one_line(delphes, tmp_path):
    """`python -m salad` itself: nothing else (warnings, tracebacks) on stderr."""
    root, procs, good = delphes
    path, _ = bad_root_files(root, good)["no_branch"]
    argv = [str(a) for a in preselect_argv(path, procs, tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-m", "salad", *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("salad: error: ")
    assert str(path) in proc.stderr and "Jet/Jet.Mass" in proc.stderr
    assert not (tmp_path / "out" / "ggH.parquet").exists()


# --------------------------------------------------------------------------- Parquet consumers
@pytest.fixture
def toy(tmp_path):
    groups = write_toy_inputs(tmp_path, TOY_SAMPLES, seed=5)
    return tmp_path, groups


def rewrite(path: Path, **columns) -> Path:
    """Overwrite columns of a Parquet artifact (callables get the old frame)."""
    frame = pd.read_parquet(path)
    for name, value in columns.items():
        frame[name] = value(frame) if callable(value) else value
    write_parquet(frame, path, provenance("test", {}))
    return path


def pseudodata_argv(root, out, signal="Y400", background=("yy", "ggH")):
    pre, spl = toy_paths(root, [*background, signal])
    pairs = [f"{p}:{s}" for p, s in zip(pre, spl)]
    return [
        "pseudodata",
        "--background",
        *pairs[:-1],
        "--signal",
        pairs[-1],
        "--strength",
        "5",
        "--instance",
        "0",
        "--output",
        out / "d.parquet",
        "--summary",
        out / "d.json",
        "--config",
        json.dumps(PSEUDO_CFG),
    ]


def test_pseudodata_runs_on_the_toy_inputs(toy, capsys):
    """Control for the failure cases below: the same inputs, unmodified, succeed."""
    root, _ = toy
    assert main([str(a) for a in pseudodata_argv(root, root / "out")]) == 0
    assert (root / "out" / "d.parquet").exists()


@pytest.mark.parametrize(
    "column,value,words",
    [
        ("myy", lambda f: f["myy"].where(f.index != 3, np.nan), "column 'myy' has 1 NaN/inf"),
        ("weight", lambda f: f["weight"].where(f.index % 50 != 0, np.inf), "column 'weight' has 6 NaN/inf"),
        ("event_id", lambda f: f["event_id"].astype(float), "column 'event_id' has dtype float64"),
    ],
)
def test_pseudodata_rejects_nonfinite_or_mistyped_columns(toy, capsys, column, value, words):
    root, _ = toy
    bad = rewrite(root / "results" / "preselected" / "ggH.parquet", **{column: value})
    out = root / "out"
    fails_cleanly(capsys, pseudodata_argv(root, out), bad, words, outputs=[out / "d.parquet", out / "d.json"])


def test_pseudodata_signal_without_events_in_the_signal_region(toy, capsys):
    root, _ = toy
    rewrite(root / "results" / "preselected" / "Y400.parquet", myy=np.float32(150.0))
    out = root / "out"
    fails_cleanly(
        capsys,
        pseudodata_argv(root, out),
        "Y400",
        "no events of its pseudo-data half in the signal region",
        outputs=[out / "d.parquet", out / "d.json"],
    )


def test_pseudodata_missing_split_file(toy, capsys):
    root, _ = toy
    missing = root / "results" / "split" / "ggH.parquet"
    missing.unlink()
    out = root / "out"
    fails_cleanly(
        capsys,
        pseudodata_argv(root, out),
        missing,
        "file not found",
        outputs=[out / "d.parquet", out / "d.json"],
    )


def test_split_rejects_garbage_parquet(tmp_path, capsys):
    bad = tmp_path / "pre.parquet"
    bad.write_bytes(b"PAR1" + b"\x00" * 300 + b"PAR1")
    out = tmp_path / "split.parquet"
    fails_cleanly(
        capsys,
        [
            "split",
            "--input",
            bad,
            "--code",
            "2",
            "--output",
            out,
            "--config",
            json.dumps({"split": {"seed": 1, "encoder_fraction": 0.5, "train_val_test": [0.6, 0.2, 0.2]}}),
        ],
        bad,
        "not a readable Parquet file",
        outputs=[out],
    )


def test_stage_config_that_is_not_json(toy, capsys):
    root, _ = toy
    argv = pseudodata_argv(root, root / "out")
    argv[-1] = "{pseudodata: oops"
    fails_cleanly(capsys, argv, "--config", "not valid JSON", outputs=[root / "out" / "d.parquet"])


TINY_ENCODER = {
    "width": 8,
    "heads": 2,
    "hl_width": 8,
    "head_width": 8,
    "proj_width": 8,
    "proj_dim": 4,
    "particle_blocks": 1,
    "class_blocks": 1,
    "batch_size": 60,
    "max_epochs": 1,
    "warmup_epochs": 1,
}


def train_argv(root, groups, out):
    pre, spl = toy_paths(root, groups)
    cfg = resolve_setup({"defaults": TINY_ENCODER, "setups": {"ID": {}}}, "ID", groups)
    return [
        "train-encoder",
        "--preselected",
        *pre,
        "--split",
        *spl,
        "--model",
        out / "model.pt",
        "--history",
        out / "history.parquet",
        "--seed",
        "1",
        "--config",
        json.dumps({"encoder": cfg}),
    ]


def test_train_encoder_rejects_nan_in_objects(toy, capsys):
    root, groups = toy

    def poison(frame):
        objects = list(frame["objects"])
        objects[7] = np.where(np.arange(132) == 0, np.nan, objects[7]).astype(np.float32)
        return objects

    bad = rewrite(root / "results" / "preselected" / "ggH.parquet", objects=poison)
    out = root / "enc"
    fails_cleanly(
        capsys,
        train_argv(root, groups, out),
        bad,
        "column 'objects' has NaN/inf",
        outputs=[out / "model.pt", out / "history.parquet", out / "state.pt"],
    )


def test_train_encoder_rejects_objects_of_the_wrong_length(toy, capsys):
    root, groups = toy
    bad = rewrite(
        root / "results" / "preselected" / "yy.parquet",
        objects=lambda f: [np.asarray(o[:120]) for o in f["objects"]],
    )
    out = root / "enc"
    fails_cleanly(
        capsys,
        train_argv(root, groups, out),
        bad,
        "not all of length 132",
        outputs=[out / "model.pt", out / "history.parquet"],
    )


def test_embed_missing_checkpoint(toy, capsys):
    root, groups = toy
    pre, _ = toy_paths(root, groups)
    model = root / "enc" / "model.pt"
    out = root / "emb.parquet"
    fails_cleanly(
        capsys,
        ["embed", "--model", model, "--preselected", *pre, "--output", out],
        model,
        "file not found",
        outputs=[out],
    )


def test_fit_flow_rejects_nan_latent(tmp_path, capsys):
    ids = 10**9 + np.arange(400)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 2)).astype(np.float32)
    z[17, 1] = np.nan
    emb = tmp_path / "emb.parquet"
    write_parquet(pd.DataFrame({"event_id": ids, "z0": z[:, 0], "z1": z[:, 1]}), emb, provenance("t"))
    data = tmp_path / "data.parquet"
    write_parquet(
        pd.DataFrame(
            {
                "event_id": ids,
                "sample": "yy",
                "myy": rng.uniform(105, 160, 400).astype(np.float32),
                "is_signal": False,
                "group": np.int8(0),
            }
        ),
        data,
        provenance("t"),
    )
    out = tmp_path / "flow.pt"
    fails_cleanly(
        capsys,
        [
            "fit-flow",
            "--embeddings",
            emb,
            "--data",
            data,
            "--output",
            out,
            "--config",
            json.dumps({"regions": {"signal_region": [120, 130]}, "window": [105, 160]}),
        ],
        emb,
        "column 'z1' has 1 NaN/inf",
        outputs=[out],
    )


# --------------------------------------------------------------------------- encoder setups
@pytest.mark.parametrize(
    "setup,words",
    [
        (
            {"holdout_samples": ["Y999"]},
            "encoder.setups.IP.holdout_samples: 'Y999' is not a configured sample",
        ),
        ({"holdout_groups": [-42]}, "encoder.setups.IP.holdout_groups: no configured sample has group -42"),
    ],
)
def test_holdout_of_a_process_that_does_not_exist(setup, words):
    groups = {"yy": 0, "ggH": 1, "Y400": -6, "C1N2_300": -1}
    with pytest.raises(SaladError) as err:
        resolve_setup({"setups": {"IP": setup}}, "IP", groups)
    assert str(err.value) == words + ("" if "groups" in words else " (samples: yy, ggH, Y400, C1N2_300)")


# --------------------------------------------------------------------------- whole config
def _test_config():
    return yaml.safe_load((REPO / "config" / "test.yaml").read_text())


def _typo(c):
    c["preselect"]["chunk_sise"] = c["preselect"].pop("chunk_size")


def _range(c):
    c["split"]["encoder_fraction"] = 1.5


def _holdout(c):
    c["encoder"]["setups"]["IP"] = {"holdout_samples": ["Y999"]}


@pytest.mark.parametrize(
    "edit,words",
    [
        (_typo, ["chunk_sise", "preselect"]),
        (_range, ["encoder_fraction", "split", "1.5"]),
        (_holdout, ["encoder.setups.IP.holdout_samples", "Y999"]),
    ],
    ids=["typo", "out_of_range", "unknown_holdout"],
)
def test_snakemake_dry_run_names_the_bad_key(tmp_path, edit, words):
    config = copy.deepcopy(_test_config())
    edit(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
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
        timeout=120,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for word in words:
        assert word in text, (word, text[-3000:])
    assert not (tmp_path / "wd" / "results").exists()
