"""Issue 7, faults and determinism: SIGKILLed jobs, writers failing midway, same input + same
config -> same output.

- train-encoder keeps a resumable state (state.pt, written after every epoch): a job killed
  after its first checkpoint resumes and ends with exactly the weights of an uninterrupted run.
- fit-flow keeps no resumable state (it is short): a killed job leaves no file at the output
  path (nor a temporary one that could pass for it), and a rerun succeeds with the same
  checkpoint an uninterrupted run writes.
- Every writer goes through salad.artifacts.atomic_output: a writer that fails midway leaves
  nothing at the final path and keeps an earlier version intact.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from cathode_fixtures import make_world
from encoder_fixtures import toy_paths, write_toy_inputs
from salad import artifacts
from salad.__main__ import main
from salad.artifacts import atomic_output, provenance, read_parquet, read_provenance, write_parquet
from salad.cathode import flow as flowmod
from salad.encoder.setups import resolve_setup
from salad.encoder.train import train_encoder

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "salad"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
ENCODER = {
    "width": 16,
    "heads": 2,
    "hl_width": 8,
    "head_width": 16,
    "proj_width": 16,
    "proj_dim": 8,
    "particle_blocks": 2,
    "class_blocks": 1,
    "batch_size": 90,
    "max_epochs": 12,
    "warmup_epochs": 1,
    "lr": 2e-3,
    "patience": 100,
}
FLOW = {"max_epochs": 30, "patience": 100, "transforms": 2, "hidden": 16, "blocks": 1, "seed": 3}
CLASSIFIER = {
    "folds": 3,
    "bdts": 2,
    "seed": 4,
    "early_stopping_rounds": 5,
    "lightgbm": {
        "n_estimators": 30,
        "learning_rate": 0.1,
        "num_leaves": 7,
        "min_child_samples": 10,
        "subsample": 1.0,
    },
}
REGIONS = {"signal_region": [120.0, 130.0]}
WINDOW = [105.0, 160.0]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Before the module fixtures train anything: the CLI runs use --threads 1 too, and float
    sums (hence weights) depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def start(argv, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "salad", *map(str, argv)],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """SIGKILL `proc` as soon as ready() is true; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"job ended (rc {proc.returncode}) before it could be killed: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("job produced nothing to wait for")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def finish(argv, cwd) -> None:
    proc = start(argv, cwd)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- encoder
@pytest.fixture(scope="module")
def encoder_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    groups = write_toy_inputs(root, {"yy": 1000, "ggH": 1000, "Y400": 1000}, seed=1)
    cfg = resolve_setup({"defaults": ENCODER, "setups": {"ID": {}}}, "ID", groups)
    return root, groups, cfg


def train_argv(root, groups, cfg, out):
    pre, spl = toy_paths(root, groups)
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
        7,
        "--threads",
        1,
        "--log",
        out / "train.log",
        "--config",
        json.dumps({"encoder": cfg}),
    ]


@pytest.fixture(scope="module")
def uninterrupted(encoder_inputs, tmp_path_factory):
    root, groups, cfg = encoder_inputs
    out = tmp_path_factory.mktemp("straight")
    pre, spl = toy_paths(root, groups)
    ckpt = train_encoder(cfg, pre, spl, 7, out / "model.pt", out / "history.parquet")
    return out, ckpt


def test_killed_encoder_training_resumes_to_the_uninterrupted_result(encoder_inputs, uninterrupted, tmp_path):
    root, groups, cfg = encoder_inputs
    out = tmp_path / "killed"
    argv = train_argv(root, groups, cfg, out)
    state = out / "state.pt"
    kill_when(start(argv, tmp_path), state.exists)
    assert not (out / "model.pt").exists() and not (out / "history.parquet").exists()
    epochs_done = torch.load(state, weights_only=True)["epoch"]
    assert 1 <= epochs_done < ENCODER["max_epochs"]

    finish(argv, tmp_path)
    log = (out / "train.log").read_text()
    assert f"resumed from {state} after epoch {epochs_done}" in log and not state.exists()
    straight_dir, straight = uninterrupted
    resumed = torch.load(out / "model.pt", weights_only=True)
    assert resumed["epochs_run"] == straight["epochs_run"] == ENCODER["max_epochs"]
    assert resumed["best_epoch"] == straight["best_epoch"]
    assert same_tensors(resumed["state_dict"], straight["state_dict"])
    cols = ["epoch", "train_loss", "val_loss", "lr"]
    pd.testing.assert_frame_equal(
        read_parquet(out / "history.parquet")[cols], read_parquet(straight_dir / "history.parquet")[cols]
    )


def test_embedding_twice_gives_identical_parquet(encoder_inputs, uninterrupted, tmp_path):
    root, groups, _ = encoder_inputs
    model = uninterrupted[0] / "model.pt"
    pre, _ = toy_paths(root, groups)
    outs = [tmp_path / f"emb{i}.parquet" for i in range(2)]
    for out in outs:
        assert (
            main(["embed", "--model", str(model), "--preselected", *map(str, pre), "--output", str(out)]) == 0
        )
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert read_provenance(outs[0])["stage"] == "embed"
    assert read_provenance(uninterrupted[0] / "history.parquet")["stage"] == "train-encoder"
    frame = read_parquet(outs[0], {"event_id": "int", "z0": "float"})
    assert len(frame) == 3000 and frame["z0"].std() > 0


# --------------------------------------------------------------------------- flow
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return make_world(root, dims=3, n_bkg=3000, n_higgs_data=30, n_sig=200, n_sim=300, seed=2)


def flow_argv(world, out, log=None):
    argv = [
        "fit-flow",
        "--embeddings",
        world["embeddings"],
        "--data",
        world["data"],
        "--output",
        out,
        "--seed-key",
        "ID/1/SIG/5/0/0",
        "--config",
        json.dumps({"regions": REGIONS, "window": WINDOW, "flow": FLOW}),
    ]
    return argv + (["--log", log] if log else [])


@pytest.fixture(scope="module")
def straight_flow(world, tmp_path_factory):
    """An uninterrupted fit-flow run (in-process)."""
    out = tmp_path_factory.mktemp("flow") / "straight.pt"
    assert main([str(a) for a in flow_argv(world, out)]) == 0
    return out


def test_killed_flow_fit_leaves_no_output_and_rerun_matches(world, straight_flow, tmp_path):
    out = tmp_path / "flows" / "0.pt"
    log = tmp_path / "logs" / "flow.log"
    argv = flow_argv(world, out, log)
    kill_when(start(argv, tmp_path), lambda: log.exists() and "epoch   0" in log.read_text())
    # no resumable state: the kill must leave nothing at (or next to) the output path
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())
    finish(argv, tmp_path)
    a, b = (torch.load(p, weights_only=False) for p in (out, straight_flow))
    assert same_tensors(a["state_dict"], b["state_dict"]) and a["history"] == b["history"]
    assert len(a["history"]) == FLOW["max_epochs"]


def test_template_and_classifier_are_deterministic(world, straight_flow, tmp_path):
    flow = straight_flow
    outputs = []
    for run in range(2):
        tmpl, scores = tmp_path / f"template{run}.parquet", tmp_path / f"scores{run}.parquet"
        assert (
            main(
                [
                    "sample-sr",
                    "--flow",
                    str(flow),
                    "--embeddings",
                    str(world["embeddings"]),
                    "--data",
                    str(world["data"]),
                    "--higgs",
                    str(world["presel_ggH"]),
                    str(world["split_ggH"]),
                    "--output",
                    str(tmpl),
                    "--seed-key",
                    "k",
                    "--config",
                    json.dumps(
                        {
                            "regions": REGIONS,
                            "window": WINDOW,
                            "seed": 3,
                            "luminosity": 10.0,
                            "template": {"oversample": 2},
                        }
                    ),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "classify",
                    "cwola",
                    "--template",
                    str(tmpl),
                    "--embeddings",
                    str(world["embeddings"]),
                    "--data",
                    str(world["data"]),
                    "--output",
                    str(scores),
                    "--seed-key",
                    "k",
                    "--config",
                    json.dumps({"regions": REGIONS, "window": WINDOW, "classifier": CLASSIFIER}),
                ]
            )
            == 0
        )
        prov = read_provenance(scores)
        # provenance names each input: run 1 read template1, run 0 template0 (same content)
        inputs = sorted(prov.pop("inputs").values())
        outputs.append((tmpl.read_bytes(), pd.read_parquet(scores), prov, inputs))
    assert outputs[0][0] == outputs[1][0]  # template: same inputs, byte-identical
    pd.testing.assert_frame_equal(outputs[0][1], outputs[1][1])
    assert outputs[0][2:] == outputs[1][2:]
    for path, stage in (
        (tmp_path / "template0.parquet", "sample_sr"),
        (tmp_path / "scores0.parquet", "classify-cwola"),
    ):
        assert read_provenance(path)["stage"] == stage
    scores = pd.read_parquet(tmp_path / "scores0.parquet")
    assert scores["score_0"].nunique() > 10  # real classifier output, not a constant


# --------------------------------------------------------------------------- atomic writes
class Boom(RuntimeError):
    pass


def half_then_boom(real):
    """A writer that writes a truncated file at the path it was given, then raises."""

    def writer(obj, path, *args, **kwargs):
        real(obj, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise Boom("disk full")

    return writer


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_parquet_failing_midway_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.parquet"
    write_parquet(pd.DataFrame({"x": [1, 2]}), path, provenance("t"))
    before = path.read_bytes()
    monkeypatch.setattr(artifacts.pq, "write_table", half_then_boom(pq.write_table))
    with pytest.raises(Boom):
        write_parquet(pd.DataFrame({"x": np.arange(1000)}), path, provenance("t"))
    with pytest.raises(Boom):
        write_parquet(pd.DataFrame({"x": [3]}), tmp_path / "new.parquet", provenance("t"))
    assert path.read_bytes() == before and leftovers(tmp_path) == ["a.parquet"]


def test_torch_checkpoints_failing_midway_leave_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", half_then_boom(torch.save))
    with pytest.raises(Boom):
        flowmod.save({"state_dict": {"w": torch.ones(100)}}, tmp_path / "flow.pt", ["z0"])
    assert leftovers(tmp_path) == []


def test_encoder_training_failing_at_the_final_write_keeps_only_its_state(
    encoder_inputs, tmp_path, monkeypatch
):
    root, groups, cfg = encoder_inputs
    pre, spl = toy_paths(root, groups)
    small = {**cfg, "max_epochs": 1}
    real = torch.save

    def fail_on_model(obj, path, *a, **k):
        if "model.pt" in Path(path).name:
            return half_then_boom(real)(obj, path, *a, **k)
        return real(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", fail_on_model)
    with pytest.raises(Boom):
        train_encoder(small, pre, spl, 1, tmp_path / "model.pt", tmp_path / "history.parquet")
    assert leftovers(tmp_path) == ["state.pt"]  # the resumable state survives, nothing else


def test_preselect_failing_at_the_write_leaves_no_outputs(tmp_path, monkeypatch):
    from delphes_fixtures import random_events, write_delphes

    root_file = write_delphes(tmp_path / "x.root", random_events(300, seed=1))
    procs = tmp_path / "p.yaml"
    procs.write_text("processes:\n  ggH: {code: 2, group: 1, xsec_fb: 1.0}\n")
    out = tmp_path / "out"
    monkeypatch.setattr(artifacts.pq, "write_table", half_then_boom(pq.write_table))
    cfg = dict(
        chunk_size=100,
        n_photon_candidates=3,
        higgs_mass=125.0,
        diphoton_trigger_pt=[35.0, 25.0],
        single_photon_trigger_pt=140.0,
        pt_over_myy=[0.4, 0.3],
        myy_range=[105.0, 160.0],
    )
    with pytest.raises(Boom):
        main(
            [
                "preselect",
                "--input",
                str(root_file),
                "--sample",
                "ggH",
                "--processes",
                str(procs),
                "--output",
                str(out / "ggH.parquet"),
                "--cutflow",
                str(out / "ggH.cutflow.json"),
                "--config",
                json.dumps({"preselect": cfg}),
            ]
        )
    assert leftovers(out) == []


def test_atomic_output_removes_the_temporary_on_any_error(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_text("{")
            raise KeyboardInterrupt
    assert leftovers(tmp_path) == []


# Calls that create files. Each must sit lexically inside `with atomic_output(...) as tmp:`.
WRITERS = {
    "write_table",
    "savefig",
    "save",
    "write_text",
    "write_bytes",
    "to_parquet",
    "to_csv",
    "recreate",
    "to_pickle",
    "dump",
}
# path.write_text in salad.slha writes an SLHA card into generate's TemporaryDirectory;
# salad.bench.tile_delphes writes its benchmark input into a TemporaryDirectory.
ALLOWED = {("slha.py", "write"), ("bench.py", "tile_delphes")}


def _unguarded_writes(tree: ast.AST, filename: str) -> list[str]:
    found = []

    def visit(node, guarded, func):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            guarded = guarded or any(
                isinstance(i.context_expr, ast.Call)
                and getattr(i.context_expr.func, "id", getattr(i.context_expr.func, "attr", ""))
                == "atomic_output"
                for i in node.items
            )
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node.name
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITERS
            and not guarded
            and (filename, func) not in ALLOWED
        ):
            if not (node.func.attr == "save" and getattr(node.func.value, "id", "") != "torch") and not (
                node.func.attr == "dump"
                and getattr(node.func.value, "id", "") not in {"json", "pickle", "yaml"}
            ):
                found.append(f"{filename}:{node.lineno} {ast.unparse(node.func)}")
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "open"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and set(str(node.args[1].value)) & set("wax")
            and not guarded
        ):
            found.append(f"{filename}:{node.lineno} open(..., {node.args[1].value!r})")
        for child in ast.iter_child_nodes(node):
            visit(child, guarded, func)

    visit(tree, False, "")
    return found


def test_every_file_writer_in_the_library_is_atomic():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        offenders += _unguarded_writes(ast.parse(path.read_text()), path.name)
    assert offenders == []
    # the scan itself works: it flags an unguarded write and accepts a guarded one
    assert _unguarded_writes(ast.parse("def f(p):\n    p.write_text('x')\n"), "m.py")
    assert not _unguarded_writes(
        ast.parse("def f(p):\n    with atomic_output(p) as t:\n        t.write_text('x')\n"), "m.py"
    )
