"""Security and input hardening (issue 14): checkpoints cannot carry code."""
import os
import subprocess
import sys

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


@pytest.mark.parametrize("loader", [flow.load, load_encoder, load_checkpoint], ids=["flow", "encoder", "generic"])
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
    out = subprocess.run([sys.executable, "-m", "salad", "inspect", str(path)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "src"})
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("salad: error: ")
    assert "refused to load" in out.stderr
    assert not marker.exists()


def test_checkpoint_round_trip_is_plain_data(tmp_path):
    """numpy values are stored as lists / Python numbers, tensors as tensors, provenance kept."""
    path = tmp_path / "c.pt"
    save_checkpoint({"w": torch.arange(3.0), "mean": np.array([1.5, 2.5]), "n": np.int64(7),
                     "pair": (np.float32(0.5), "a")}, path, {"stage": "x"})
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt["w"], torch.arange(3.0))
    assert ckpt["mean"] == [1.5, 2.5] and ckpt["n"] == 7 and type(ckpt["n"]) is int
    assert ckpt["pair"] == (0.5, "a") and ckpt["provenance"]["stage"] == "x"
    assert set(ckpt["provenance"]["code"]) in ({"git_commit", "git_dirty"}, {"package_version"})
    assert not list(tmp_path.glob(".*tmp*"))


def test_flow_checkpoint_loads_weights_only(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.uniform(105, 160, 600)
    z = rng.normal(size=(600, 2))
    ckpt = flow.fit(z, m, (105.0, 160.0), {"max_epochs": 2, "transforms": 1, "hidden": 8}, seed=1)
    flow.save(ckpt, tmp_path / "f.pt", ["z0", "z1"])
    raw = torch.load(tmp_path / "f.pt", weights_only=True)   # would raise if anything needed code
    assert raw["latent_columns"] == ["z0", "z1"] and raw["provenance"]["stage"] == "fit-flow"
    model, loaded = flow.load(tmp_path / "f.pt")
    np.testing.assert_allclose(loaded["z_mean"], ckpt["z_mean"])
    assert isinstance(loaded["z_std"], np.ndarray)
