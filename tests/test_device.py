"""Device selection: encoder training/embedding, flows and NPLM run with an explicit
device='cpu' through the same code path a GPU takes (no GPU in the test environment), and
the forward-pass autocast path (bf16) works on the CPU too."""

import numpy as np
import pytest
import torch

from encoder_fixtures import toy_paths, write_toy_inputs
from salad import nplm
from salad.cathode import flow
from salad.encoder.data import load_events
from salad.encoder.embed import embed
from salad.encoder.setups import resolve_setup
from salad.encoder.train import Trainer, autocast_dtype, load_checkpoint, prepare_data, train_encoder
from salad.errors import SaladError

TINY = {
    "width": 8,
    "heads": 2,
    "hl_width": 8,
    "head_width": 8,
    "proj_width": 8,
    "proj_dim": 4,
    "batch_size": 100,
    "max_epochs": 2,
    "warmup_epochs": 1,
    "patience": 5,
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    groups = write_toy_inputs(root, 200)
    cfg = resolve_setup({"defaults": TINY, "setups": {"ID": {}}}, "ID", groups)
    return root, groups, cfg


def test_autocast_policy():
    assert autocast_dtype(torch.device("cpu")) is None  # CPU stays float32
    assert autocast_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), "fp32") is None
    with pytest.raises(SaladError):
        autocast_dtype(torch.device("cpu"), "fp16")


def test_encoder_train_and_embed_on_explicit_cpu(toy, tmp_path):
    root, groups, cfg = toy
    pre, spl = toy_paths(root, groups)
    ckpt = train_encoder(cfg, pre, spl, 1, tmp_path / "model.pt", tmp_path / "h.parquet", device="cpu")
    auto = train_encoder(cfg, pre, spl, 1, tmp_path / "auto.pt", tmp_path / "a.parquet")
    for k, v in ckpt["state_dict"].items():  # default device on a CPU machine = cpu
        assert v.device.type == "cpu" and torch.equal(v, auto["state_dict"][k])
    model, _, _ = load_checkpoint(tmp_path / "model.pt", "cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    frame = embed(tmp_path / "model.pt", pre, tmp_path / "emb.parquet", 64, device="cpu")
    assert np.isfinite(frame.filter(like="z").to_numpy()).all()


def test_encoder_bf16_autocast_step_is_finite(toy, tmp_path):
    root, groups, cfg = toy
    pre, spl = toy_paths(root, groups)
    train, val, norm, grp, fp = prepare_data(cfg, load_events(pre, spl, cfg["train_samples"]), 1)
    losses = {}
    for precision in ("fp32", "bf16"):
        t = Trainer(
            cfg, train, val, norm, grp, 1, tmp_path / f"{precision}.pt", fp, device="cpu", precision=precision
        )
        losses[precision] = (t.train_epoch()["train_loss"], t.validate()["val_loss"])
    assert np.isfinite(losses["bf16"]).all()
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=0.05)


def test_flow_fit_and_sample_on_explicit_cpu():
    rng = np.random.default_rng(0)
    m = rng.uniform(105.0, 160.0, 600)
    z = rng.normal(size=(600, 3)) + 0.01 * m[:, None]
    cfg = {"max_epochs": 2, "transforms": 1, "hidden": 8, "blocks": 1}
    a = flow.fit(z, m, (105.0, 160.0), cfg, seed=1, device="cpu")
    b = flow.fit(z, m, (105.0, 160.0), cfg, seed=1)
    assert all(v.device.type == "cpu" for v in a["state_dict"].values())
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k])
    model = flow.build_flow(a["arch"])
    model.load_state_dict(a["state_dict"])
    s = flow.sample(model.eval(), a, np.full(200, 125.0), seed=3, device="cpu")
    assert s.shape == (200, 3) and np.isfinite(s).all()


def test_nplm_on_explicit_cpu():
    rng = np.random.default_rng(1)
    x_ref, x_data = rng.normal(size=(300, 2)), rng.normal(size=(150, 2))
    cfg = {"n_centers": 20, "lambda": 1e-6, "loss": "nplm"}
    a = nplm.run_test(x_ref, np.full(300, 0.5), x_data, 1.0, cfg, seed=1, device="cpu")
    b = nplm.run_test(x_ref, np.full(300, 0.5), x_data, 1.0, cfg, seed=1)
    assert np.isfinite(a.t) and a.t == b.t
