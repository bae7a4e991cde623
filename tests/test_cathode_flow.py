"""fit_flow learns a conditional density; checkpoints round-trip; divergence is reported."""

import numpy as np
import pytest
import torch

from cathode_fixtures import SHIFT, background_latent, continuum_mass
from salad.cathode import flow
from salad.errors import SaladError

FAST = {
    "max_epochs": 25,
    "patience": 4,
    "transforms": 2,
    "hidden": 32,
    "blocks": 1,
    "batch_size": 256,
    "learning_rate": 3e-3,
}


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
    monkeypatch.setattr(flow, "_nll", lambda model, z, ctx: torch.tensor(float("nan"), requires_grad=True))
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
    cfg = {**FAST, "max_epochs": 6, "patience": 10, "batch_size": 1000}  # one batch per epoch
    monkeypatch.setattr(flow, "_nll", _nan_training_loss(lambda n: n == 2))  # epoch 1 diverges
    with caplog.at_level("WARNING"):
        ckpt = flow.fit(z, m, (105.0, 160.0), cfg, seed=1)
    assert "restart 1 from the best epoch 0" in caplog.text
    assert ckpt["state_dict"] is not None and len(ckpt["history"]) == cfg["max_epochs"] - 1

    monkeypatch.setattr(flow, "_nll", _nan_training_loss(lambda n: n >= 2))  # never recovers
    with pytest.raises(SaladError, match="diverged"):
        flow.fit(z, m, (105.0, 160.0), cfg, seed=1)


# ----------------------------------------------------------------- orientation of the MAF layers
TINY = {"dims": 3, "transforms": 2, "hidden": 8, "blocks": 1}
# (arch key, value): our masked layer, and normflows' layer in both orientations (older fits)
VARIANTS = [("masked", "density"), ("normflows", "density"), ("normflows", "sampling")]


def _random_flow(orientation, seed=0, layer="normflows"):
    """A tiny flow in float64 with every parameter randomised (the zero initialisation of the
    residual blocks and of the base encoder would hide errors)."""
    torch.manual_seed(seed)
    model = flow.build_flow({**TINY, "autoregressive": orientation, "layer": layer}).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.4 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("layer,orientation", VARIANTS)
def test_log_prob_is_the_change_of_variables_density(layer, orientation):
    """log p(x | c) = log N(u; mu(c), sigma(c)) + log |det du/dx| with u = inverse(x) and the
    Jacobian taken numerically by autograd, row by row."""
    model = _random_flow(orientation, layer=layer)
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(5, 3)))
    ctx = torch.as_tensor(rng.uniform(-1, 1, size=(5, 1)))
    got = model.log_prob(x, context=ctx)
    for i in range(5):
        c = ctx[i : i + 1]
        to_u = lambda row: model.inverse(row[None], context=c)[0]  # noqa: E731, B023
        jac = torch.autograd.functional.jacobian(to_u, x[i])
        u = to_u(x[i])
        enc = model.q0.context_encoder(c)[0]
        mu, log_sigma = enc[:3], enc[3:]
        log_base = torch.distributions.Normal(mu, log_sigma.exp()).log_prob(u).sum()
        expected = log_base + torch.linalg.slogdet(jac)[1]
        assert got[i].item() == pytest.approx(expected.item(), abs=1e-9)


@pytest.mark.parametrize("layer,orientation", VARIANTS)
def test_sample_and_log_prob_are_inverse_consistent(layer, orientation):
    """forward (sampling) then inverse (density) returns the base point, and the log density
    sample() reports for its draws equals log_prob of those draws."""
    model = _random_flow(orientation, seed=3, layer=layer)
    ctx = torch.as_tensor(np.linspace(-1, 1, 64)[:, None])
    torch.manual_seed(4)
    with torch.no_grad():
        x, log_q = model.sample(64, context=ctx)
        assert torch.allclose(model.log_prob(x, context=ctx), log_q, atol=1e-9)
        u = torch.randn(64, 3, dtype=torch.float64)
        assert torch.allclose(model.inverse(model.forward(u, context=ctx), context=ctx), u, atol=1e-9)


def test_density_orientation_is_one_made_pass_per_layer(monkeypatch):
    """The speed property: log_prob calls each layer's MADE once (the legacy orientation d
    times); sampling becomes the sequential direction."""

    def made_calls(orientation, what, layer="normflows"):
        model = _random_flow(orientation, layer=layer)
        calls = [0]
        for layer in model.flows:
            if hasattr(layer, "autoregressive_net"):
                layer.autoregressive_net.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        ctx = torch.zeros(10, 1, dtype=torch.float64)
        with torch.no_grad():
            if what == "log_prob":
                model.log_prob(torch.zeros(10, 3, dtype=torch.float64), context=ctx)
            else:
                model.sample(10, context=ctx)
        return calls[0]

    layers, dims = TINY["transforms"], TINY["dims"]
    assert made_calls("density", "log_prob") == layers
    assert made_calls("density", "sample") == layers * dims
    assert made_calls("sampling", "log_prob") == layers * dims
    assert made_calls("sampling", "sample") == layers
    assert made_calls("density", "log_prob", "masked") == layers
    assert made_calls("density", "sample", "masked") == layers * dims


def test_new_fits_use_the_density_orientation_and_old_checkpoints_keep_theirs(fitted):
    ckpt, _ = fitted
    assert ckpt["arch"]["autoregressive"] == "density" and ckpt["arch"]["layer"] == "masked"
    assert type(flow.build_flow(ckpt["arch"]).flows[0]).__name__ == "MaskedAffine"
    legacy = {k: v for k, v in ckpt["arch"].items() if k not in ("autoregressive", "layer")}
    layer = flow.build_flow(legacy).flows[0]
    assert type(layer).__name__ == "MaskedAffineAutoregressive"
    density = flow.build_flow({**legacy, "autoregressive": "density"}).flows[0]
    assert type(density).__name__ == "DensityMAF"
    with pytest.raises(SaladError, match="layer='made'"):
        flow.build_flow({**legacy, "layer": "made"})
    with pytest.raises(SaladError, match="density orientation only"):
        flow.build_flow({**legacy, "layer": "masked", "autoregressive": "sampling"})
    with pytest.raises(SaladError, match="autoregressive='iaf'"):
        flow.build_flow({**legacy, "autoregressive": "iaf"})


def test_split_is_disjoint_and_sized_and_fits_are_deterministic():
    rng = np.random.default_rng(0)
    m = continuum_mass(rng, 500)
    z = background_latent(rng, m, 2)
    tr, va, mean, std = flow.split_and_scale(z, m, 0.2, seed=3)
    assert len(va) == 100 and len(tr) == 400 and not set(tr) & set(va)
    assert np.allclose(mean, z[tr].mean(0)) and np.allclose(std, z[tr].std(0))
    cfg = {**FAST, "max_epochs": 2}
    a, b = flow.fit_many(z, m, (105.0, 160.0), cfg, seeds=[7, 8])
    again = flow.fit(z, m, (105.0, 160.0), cfg, seed=8)
    assert (a["n_train"], a["n_val"]) == (400, 100)
    for key, value in b["state_dict"].items():
        assert torch.equal(value, again["state_dict"][key])
    assert not torch.equal(
        a["state_dict"]["q0.context_encoder.0.weight"], b["state_dict"]["q0.context_encoder.0.weight"]
    )


def test_estimator_wraps_the_fit_and_normalises(fitted, tmp_path):
    """CathodeFlow.load carries the checkpoint's scaler and window; sample is flow.sample;
    log_prob is a normalised density of z in original units (1-D integral over z = 1)."""
    _, path = fitted
    est = flow.CathodeFlow.load(path)
    model, loaded = flow.load(path)
    assert est.window == (105.0, 160.0) and np.array_equal(est.scaler.std, loaded["z_std"])
    assert np.array_equal(
        est.sample(np.full(20, 125.0), seed=3), flow.sample(model, loaded, np.full(20, 125.0), seed=3)
    )
    # p(z0, z1 | m): integrate over a grid wide enough for both dimensions (std 1 and 3)
    g0, g1 = np.linspace(-8, 8, 161), np.linspace(-6, 26, 161)
    zz = np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
    dens = np.exp(est.log_prob(zz, np.full(len(zz), 125.0)))
    assert dens.sum() * (g0[1] - g0[0]) * (g1[1] - g1[0]) == pytest.approx(1.0, abs=0.03)
    est.save(tmp_path / "again.pt", ["z0", "z1"])
    again = flow.CathodeFlow.load(tmp_path / "again.pt")
    z = est.sample(np.full(5, 140.0), seed=1)
    assert np.allclose(again.log_prob(z, np.full(5, 140.0)), est.log_prob(z, np.full(5, 140.0)))
