"""fit_flow learns a conditional density; checkpoints round-trip; divergence is reported."""
import numpy as np
import pytest
import torch

from cathode_fixtures import SHIFT, background_latent, continuum_mass
from salad.cathode import flow
from salad.errors import SaladError

FAST = {"max_epochs": 25, "patience": 4, "transforms": 2, "hidden": 32, "blocks": 1,
        "batch_size": 256, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    rng = np.random.default_rng(0)
    m = continuum_mass(rng, 3000)
    z = background_latent(rng, m, 2) * np.array([1.0, 3.0]) + np.array([0.0, 10.0])
    ckpt = flow.fit(z, m, (105.0, 160.0), FAST, seed=1)
    path = tmp_path_factory.mktemp("flow") / "f.pt"
    flow.save(ckpt, path, ["z0", "z1"])
    return ckpt, path


def test_flow_learns_mass_dependent_mean(fitted):
    ckpt, path = fitted
    model, loaded = flow.load(path)
    for mass in (110.0, 125.0, 155.0):
        s = flow.sample(model, loaded, np.full(4000, mass), seed=2)
        mu = SHIFT * (mass - 132.5) / 27.5
        # dimension 0: N(mu, 1); dimension 1: N(10 + 3 mu, 3) (unstandardised units restored)
        assert s[:, 0].mean() == pytest.approx(mu, abs=0.15)
        assert s[:, 1].mean() == pytest.approx(10 + 3 * mu, abs=0.45)
        assert s[:, 0].std() == pytest.approx(1.0, abs=0.15)
        assert s[:, 1].std() == pytest.approx(3.0, abs=0.45)


def test_checkpoint_keeps_best_epoch_and_scaler(fitted):
    ckpt, path = fitted
    _, loaded = flow.load(path)
    val = [h["val_nll"] for h in ckpt["history"]]
    assert ckpt["best_epoch"] == int(np.argmin(val))
    assert loaded["latent_columns"] == ["z0", "z1"]
    # marginal std includes the mass-dependent mean; dimension 1 is dimension 0 scaled by 3
    assert loaded["z_std"][1] / loaded["z_std"][0] == pytest.approx(3.0, rel=0.05)
    assert loaded["z_mean"][1] - 3 * loaded["z_mean"][0] == pytest.approx(10.0, abs=0.2)
    assert val[ckpt["best_epoch"]] < val[0]
    assert not list(path.parent.glob(".*tmp*"))  # atomic write left no temporary


def test_sampling_is_deterministic(fitted):
    _, path = fitted
    model, loaded = flow.load(path)
    a = flow.sample(model, loaded, np.full(50, 125.0), seed=5)
    b = flow.sample(model, loaded, np.full(50, 125.0), seed=5)
    assert np.array_equal(a, b)


def test_nan_loss_stops_with_clear_error(monkeypatch):
    rng = np.random.default_rng(0)
    m = continuum_mass(rng, 400)
    z = background_latent(rng, m, 2)
    monkeypatch.setattr(flow, "_nll", lambda model, z, ctx: torch.tensor(float("nan"),
                                                                          requires_grad=True))
    with pytest.raises(SaladError, match="diverged.*non-finite loss in epoch 0"):
        flow.fit(z, m, (105.0, 160.0), FAST, seed=1)


def test_too_few_sideband_events():
    with pytest.raises(SaladError, match="sideband events"):
        flow.fit(np.zeros((5, 2)), np.full(5, 110.0), (105.0, 160.0), FAST)


def test_unreadable_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(SaladError, match="bad.pt: not a readable flow checkpoint"):
        flow.load(bad)



def _nan_training_loss(bad_calls):
    """A flow._nll whose training calls number `bad_calls(n)` (1-based) return NaN."""
    real_nll, calls = flow._nll, [0]

    def nll(model, zb, ctx):
        if model.training:
            calls[0] += 1
            if bad_calls(calls[0]):
                return torch.tensor(float("nan"), requires_grad=True)
        return real_nll(model, zb, ctx)
    return nll


def test_diverged_epoch_restarts_from_best_weights(monkeypatch, caplog):
    """Non-finite training losses in one epoch: restart from the best epoch at half the
    learning rate and finish; divergence that never stops still ends in the clear error."""
    rng = np.random.default_rng(0)
    m = continuum_mass(rng, 600)
    z = background_latent(rng, m, 2)
    cfg = {**FAST, "max_epochs": 6, "patience": 10, "batch_size": 1000}   # one batch per epoch
    monkeypatch.setattr(flow, "_nll", _nan_training_loss(lambda n: n == 2))  # epoch 1 diverges
    with caplog.at_level("WARNING"):
        ckpt = flow.fit(z, m, (105.0, 160.0), cfg, seed=1)
    assert "restart 1 from the best epoch 0" in caplog.text
    assert ckpt["state_dict"] is not None and len(ckpt["history"]) == cfg["max_epochs"] - 1

    monkeypatch.setattr(flow, "_nll", _nan_training_loss(lambda n: n >= 2))   # never recovers
    with pytest.raises(SaladError, match="diverged"):
        flow.fit(z, m, (105.0, 160.0), cfg, seed=1)
