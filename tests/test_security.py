"""Security (issue 14): checkpoints cannot carry code; config values reaching a shell are
quoted (a checkout path with a space and a `;`); a moved checkout re-runs nothing."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from salad.artifacts import load_checkpoint, save_checkpoint
from salad.cathode import flow
from salad.encoder.train import load_checkpoint as load_encoder
from salad.errors import SaladError


class _Payload:
    """Unpickling this calls os.system(command): what a malicious checkpoint would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def crafted(tmp_path):
    """A torch checkpoint whose unpickling would create `marker`."""
    marker = tmp_path / "pwned"
    path = tmp_path / "0.pt"
    torch.save({"arch": _Payload(f"touch {marker}"), "state_dict": {}}, path)
    return path, marker


def test_the_crafted_payload_is_real(crafted):
    """The pre-issue-14 loader (weights_only=False) runs the payload: the file is a real attack."""
    path, marker = crafted
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "loader", [flow.load, load_encoder, load_checkpoint], ids=["flow", "encoder", "generic"]
)
def test_crafted_checkpoint_is_refused_and_never_runs(crafted, loader):
    path, marker = crafted
    with pytest.raises(SaladError) as err:
        loader(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: refused to load") and "it would call posix.system" in message
    assert not marker.exists()


def test_crafted_checkpoint_through_the_cli_is_one_line(crafted):
    path, marker = crafted
    out = subprocess.run(
        [sys.executable, "-m", "salad", "inspect", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": "src"},
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("salad: error: ")
    assert "refused to load" in out.stderr
    assert not marker.exists()


def test_checkpoint_round_trip_is_plain_data(tmp_path):
    """numpy values are stored as lists / Python numbers, tensors as tensors, provenance kept."""
    path = tmp_path / "c.pt"
    save_checkpoint(
        {
            "w": torch.arange(3.0),
            "mean": np.array([1.5, 2.5]),
            "n": np.int64(7),
            "pair": (np.float32(0.5), "a"),
        },
        path,
        {"stage": "x"},
    )
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt["w"], torch.arange(3.0))
    assert ckpt["mean"] == [1.5, 2.5] and ckpt["n"] == 7 and type(ckpt["n"]) is int
    assert ckpt["pair"] == (0.5, "a") and ckpt["provenance"]["stage"] == "x"
    assert set(ckpt["provenance"]["code_version"]) in ({"git_commit", "git_dirty"}, {"package_version"})
    assert not list(tmp_path.glob(".*tmp*"))


def test_flow_checkpoint_loads_weights_only(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.uniform(105, 160, 600)
    z = rng.normal(size=(600, 2))
    ckpt = flow.fit(z, m, (105.0, 160.0), {"max_epochs": 2, "transforms": 1, "hidden": 8}, seed=1)
    flow.save(ckpt, tmp_path / "f.pt", ["z0", "z1"])
    raw = torch.load(tmp_path / "f.pt", weights_only=True)  # would raise if anything needed code
    assert raw["latent_columns"] == ["z0", "z1"] and raw["provenance"]["stage"] == "fit-flow"
    model, loaded = flow.load(tmp_path / "f.pt")
    np.testing.assert_allclose(loaded["z_mean"], ckpt["z_mean"])
    assert isinstance(loaded["z_std"], np.ndarray)


# --------------------------------------------------------------------------- shell quoting
def _checkout(dest):
    """A copy of the workflow (Snakefile, rules, workflow, config, src, envs) at `dest`."""
    import shutil

    from conftest import REPO

    dest.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", dest)
    for folder in ("rules", "workflow", "config", "src", "envs"):
        shutil.copytree(
            REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    return dest


def _snakemake(checkout, *args):
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile=config/t.yaml", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


TARGET = "results/split/ggH.parquet"


@pytest.fixture(scope="module")
def odd_checkout(tmp_path_factory):
    """A checkout under `a b;c` whose process table is `config/p;touch INJECTED;.yaml`, after
    generate -> preselect -> split of one sample ran there."""
    import shutil

    import yaml

    root = _checkout(tmp_path_factory.mktemp("odd") / "a b;c")
    shutil.copy(root / "config" / "processes.yaml", root / "config" / "p;touch INJECTED;.yaml")
    cfg = yaml.safe_load((root / "config" / "test.yaml").read_text())
    cfg["processes"] = "config/p;touch INJECTED;.yaml"
    cfg["generate"]["events"] = 250
    (root / "config" / "t.yaml").write_text(yaml.safe_dump(cfg))
    dry = _snakemake(root, "-n")
    run = _snakemake(root, TARGET)
    return root, dry, run


def test_dry_run_and_real_jobs_from_a_path_with_space_and_semicolon(odd_checkout):
    root, dry, run = odd_checkout
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]
    assert (root / TARGET).exists() and (root / "results/generated/ggH.root").exists()
    injected = [p for p in (root, root / "config", root.parent, Path.cwd()) if (p / "INJECTED").exists()]
    assert not injected
    assert " 3 jobs" in run.stderr or "3 of 3 steps (100%) done" in run.stderr, run.stderr[-2000:]


def test_moved_checkout_reruns_nothing(odd_checkout, tmp_path):
    """Copy the finished checkout elsewhere (every absolute path changes): nothing to do."""
    import shutil

    root, _, run = odd_checkout
    assert run.returncode == 0
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(root, moved, symlinks=True, copy_function=shutil.copy2)
    dry = _snakemake(moved, "-n", TARGET)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


def test_moved_project_folder_reruns_nothing(pipeline_run, tmp_path):
    """The finished end-to-end project folder (config/test.yaml), copied elsewhere with its
    file times: a dry run schedules no job (no absolute path enters the DAG)."""
    import shutil

    from conftest import run_snakemake

    moved = tmp_path / "moved project"
    shutil.copytree(pipeline_run, moved, symlinks=True)
    proc = run_snakemake(moved, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
