"""Encoder architectures: gradients, padding mask, size, augmentations, ParT interactions."""

import numpy as np
import pytest
import torch

from encoder_fixtures import toy_objects
from salad.encoder.augment import Augmenter
from salad.encoder.data import Normaliser, padding_mask, raw_kinematics
from salad.encoder.losses import build_objective
from salad.encoder.models import build_model, count_parameters, pair_features
from salad.encoder.setups import DEFAULTS

SMALL = dict(
    DEFAULTS,
    width=16,
    heads=2,
    hl_width=8,
    head_width=16,
    proj_width=16,
    proj_dim=8,
    blocks=2,
    augmentations={"mask": 0.2},
)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    raw = toy_objects(rng, 32, 2.0, 50.0, 0.3, 30.0)
    raw[0, :10] = 0.0  # an event whose only object is MET
    evt = rng.uniform(0.5, 3, (32, 2)).astype(np.float32)
    norm = Normaliser.fit(raw, evt)
    obj, ev = norm.apply(raw, evt)
    return (
        torch.from_numpy(obj),
        torch.from_numpy(ev),
        torch.from_numpy(padding_mask(raw)),
        torch.arange(32) % 4,
        norm,
    )


@pytest.mark.parametrize(
    "model,loss",
    [
        ("particle_transformer", "supcon"),
        ("transformer", "vicreg_ce"),
        ("mlp", "simclr"),
        ("particle_transformer", "simclr_supervised"),
    ],
)
def test_gradients_reach_every_parameter(batch, model, loss):
    obj, evt, mask, labels, norm = batch
    cfg = dict(SMALL, model=model, loss=loss)
    torch.manual_seed(0)
    net = build_model(cfg, 4).train()
    objective, aug = build_objective(cfg), Augmenter(cfg["augmentations"], norm, "cpu")
    g = torch.Generator().manual_seed(0)
    views = [aug(obj, evt, mask, g) for _ in range(objective.n_views)]
    objective([net(*v, generator=g) for v in views], labels)["loss"].backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("model", ["particle_transformer", "transformer", "mlp"])
def test_padded_slots_do_not_change_output(batch, model):
    obj, evt, mask, _, _ = batch
    torch.manual_seed(1)
    net = build_model(dict(SMALL, model=model), 4).eval()
    with torch.no_grad():
        ref = net.encode(obj, evt, mask)[0]
        assert torch.isfinite(ref).all()
        garbage = obj.clone()
        garbage[..., :7] = torch.where(
            mask[..., None], garbage[..., :7], torch.randn_like(garbage[..., :7]) * 50
        )
        assert not torch.equal(garbage, obj)
        assert torch.allclose(net.encode(garbage, evt, mask)[0], ref, atol=1e-5)
        # while a real object's values do matter
        changed = obj.clone()
        changed[mask] += 1.0
        assert not torch.allclose(net.encode(changed, evt, mask)[0], ref, atol=1e-3)


def test_paper_size_particle_transformer():
    cfg = dict(DEFAULTS, width=120, heads=8, hl_width=64, head_width=128)
    net = build_model(cfg, 13)
    assert net.backbone.interactions  # the default: ParT interaction features
    inference = count_parameters(net) - count_parameters(net.projector)
    assert 1.0e6 < inference < 1.2e6
    # inputs are the 12 object features and (dR, pT) only: no photon four-momenta, no m_yy
    assert net.backbone.embed[0].in_features == 12 and net.backbone.hl[0].in_features == 2


def test_reparameterisation_only_in_training(batch):
    obj, evt, mask, _, _ = batch
    net = build_model(dict(SMALL), 4)
    g = torch.Generator().manual_seed(0)
    out = net.train()(obj, evt, mask, generator=g)
    assert not torch.equal(out["z"], out["mu"])
    out = net.eval()(obj, evt, mask)
    assert torch.equal(out["z"], out["mu"])


def test_augmentations_keep_padding_and_types(batch):
    obj, evt, mask, _, norm = batch
    spec = {"mask": 0.3, "rotate": 1.0, "flip_eta": 0.5, "smear_pt": 0.1}
    g = torch.Generator().manual_seed(0)
    a_obj, a_evt, a_mask = Augmenter(spec, norm, "cpu")(obj, evt, mask, g)
    assert torch.equal(a_mask, mask) and torch.equal(a_obj[..., 7:], obj[..., 7:])
    assert (a_obj[~mask] == 0).all() and not torch.equal(a_obj, obj)
    phi = a_obj[..., 2] * float(norm.obj_std[2]) + float(norm.obj_mean[2])
    assert (phi[mask].abs() <= np.pi + 1e-4).all()
    d_obj, _, d_mask = Augmenter({"drop_object": 0.5}, norm, "cpu")(obj, evt, mask, g)
    assert (d_mask <= mask).all() and d_mask.sum() < mask.sum() and (d_obj[~d_mask] == 0).all()


# --------------------------------------------------------------------------- ParT interactions
def _four_vector(pt, eta, phi, m):
    """(E, px, py, pz) [GeV] the textbook way, float64."""
    return np.array(
        [np.sqrt((pt * np.cosh(eta)) ** 2 + m**2), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)]
    )


def test_pair_features_two_objects_by_hand():
    a, b = (100.0, 0.5, 3.0, 10.0), (50.0, -1.0, -3.0, 0.0)  # dphi = 6 - 2 pi = -0.2832
    garbage = (7.0, 2.0, 1.0, 3.0)  # masked: must not count
    p4 = torch.tensor(
        [[a, b, garbage], [(10.0, 1.0, 0.5, 0.0), (20.0, 1.0, 0.5, 0.0), garbage]], dtype=torch.float64
    )
    mask = torch.tensor([[True, True, False], [True, True, False]])
    u = pair_features(p4, mask)
    assert u.shape == (2, 4, 3, 3)
    ea, eb = _four_vector(*a), _four_vector(*b)
    y = lambda e: 0.5 * np.log((e[0] + e[3]) / (e[0] - e[3]))  # noqa: E731  rapidity
    dphi = 6.0 - 2 * np.pi
    dr = np.hypot(y(ea) - y(eb), dphi)
    s = ea + eb
    m2 = s[0] ** 2 - (s[1:] ** 2).sum()
    want = np.log([dr, 50.0 * dr, 50.0 / 150.0, m2])
    # pinned: dy = 1.4977 (y_a = 0.4977 < eta_a for m_a > 0), m^2 = 14 090.7 GeV^2
    assert y(ea) - y(eb) == pytest.approx(1.49771, abs=1e-5) and m2 == pytest.approx(14090.68, rel=1e-6)
    assert np.allclose(u[0, :, 0, 1].numpy(), want, rtol=1e-9, atol=1e-9)
    assert torch.equal(u[0, :, 1, 0], u[0, :, 0, 1])  # symmetric
    # collinear massless pair: dR = kT = m^2 = 0 -> clamped at 1e-8 before the log; z = 1/3
    assert np.allclose(u[1, :, 0, 1].numpy(), np.log([1e-8, 1e-8, 1 / 3, 1e-8]), atol=1e-6)
    # diagonal and every pair with the masked object are exactly zero
    assert (u[:, :, 2, :] == 0).all() and (u[:, :, :, 2] == 0).all()
    assert (torch.diagonal(u, dim1=2, dim2=3) == 0).all()
    # float32 agrees (the m^2 form avoids E^2 - p^2 cancellation)
    assert torch.allclose(pair_features(p4.float(), mask)[0, :, 0, 1].double(), u[0, :, 0, 1], rtol=1e-5)


def test_raw_kinematics_inverts_the_normaliser(batch):
    obj, evt, mask, _, norm = batch
    rng = np.random.default_rng(0)
    raw = toy_objects(rng, 32, 2.0, 50.0, 0.3, 30.0)
    normed, _ = norm.apply(raw, evt.numpy())
    p4 = raw_kinematics(
        torch.from_numpy(normed), torch.as_tensor(norm.obj_mean[:4]), torch.as_tensor(norm.obj_std[:4])
    )
    real = padding_mask(raw)
    assert np.allclose(p4.numpy()[real], raw[..., :4][real], rtol=1e-4, atol=1e-3)
    met = raw[..., 11] == 1
    assert (p4[..., 1].numpy()[met] == 0).all() and (p4[..., 3].numpy()[met] == 0).all()


def _pt(interactions=True, **kw):
    return dict(SMALL, model="particle_transformer", interactions=interactions, **kw)


def test_particle_blocks_permutation_equivariant_with_bias(batch):
    obj, evt, mask, _, norm = batch
    torch.manual_seed(2)
    net = build_model(_pt(), 4, norm)
    bb = net.backbone
    assert torch.allclose(bb.kin_mean, torch.as_tensor(norm.obj_mean[:4]))
    perm = torch.randperm(obj.shape[1], generator=torch.Generator().manual_seed(3))
    for mode in (net.train, net.eval):  # BatchNorm over real pairs: batch or running statistics
        mode()
        with torch.no_grad():
            bias = bb.pair_bias(obj, mask)
            assert bias.shape == (32, 2, 11, 11) and bias.abs().sum() > 0
            assert torch.allclose(
                bb.pair_bias(obj[:, perm], mask[:, perm]), bias[:, :, perm][..., perm], atol=1e-5
            )
            x = bb.particles(obj, mask)
            assert torch.allclose(bb.particles(obj[:, perm], mask[:, perm]), x[:, perm], atol=1e-5)
    with torch.no_grad():  # and the event representation is invariant
        assert torch.allclose(
            net.encode(obj[:, perm], evt, mask[:, perm])[0], net.encode(obj, evt, mask)[0], atol=1e-5
        )


def test_interactions_switch(batch):
    obj, evt, mask, _, norm = batch
    torch.manual_seed(4)
    on, off = build_model(_pt(True), 4, norm).eval(), build_model(_pt(False), 4, norm).eval()
    assert not off.backbone.interactions and not hasattr(off.backbone, "pair_embed")
    extra = {k for k in on.state_dict() if k not in off.state_dict()}
    assert {k.split(".")[1] for k in extra} == {"pair_embed", "kin_mean", "kin_std"}
    assert not any("pair" in k or "kin_" in k for k in off.state_dict())
    assert count_parameters(on) - count_parameters(off) == count_parameters(on.backbone.pair_embed)
    # same weights, bias on vs off: different latents; a zero bias gives exactly the old model
    off.load_state_dict({k: v for k, v in on.state_dict().items() if k not in extra})
    with torch.no_grad():
        assert not torch.allclose(on.encode(obj, evt, mask)[0], off.encode(obj, evt, mask)[0], atol=1e-4)
        on.backbone.pair_embed.net[-1].weight.zero_()
        on.backbone.pair_embed.net[-1].bias.zero_()
        assert torch.allclose(on.encode(obj, evt, mask)[0], off.encode(obj, evt, mask)[0], atol=1e-6)
    # an older config without the key builds the old model
    legacy = {k: v for k, v in _pt().items() if k != "interactions"}
    assert not build_model(legacy, 4).backbone.interactions


# ---------------------------------------------------------------- DINO projection head (paper B)
def test_dino_head_shapes_and_normalisation():
    from salad.encoder.models import DINOHead

    torch.manual_seed(0)
    head = DINOHead(6, out_dim=64, hidden=256, bottleneck=64, layers=3)  # paper B Table V
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 256), (256, 256), (256, 64)]
    assert sum(isinstance(m, torch.nn.GELU) for m in head.mlp) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules())
    x = torch.randn(5, 6)
    out = head(x)
    assert out.shape == (5, 64)
    # by hand: bottleneck features, L2-normalised, then W = g v / |v| row-wise with g = 1
    h = head.mlp(x)
    u = h / h.norm(dim=1, keepdim=True)
    v = head.last_layer.parametrizations.weight.original1
    g = head.last_layer.parametrizations.weight.original0
    assert torch.equal(g, torch.ones(64, 1)) and g.requires_grad  # "normalize last layer: False"
    expected = u @ (v / v.norm(dim=1, keepdim=True)).T
    assert torch.allclose(out, expected, atol=1e-6)
    # every output unit has a unit-norm weight row at init, so |out_k| <= 1
    assert out.abs().max() <= 1 + 1e-6
    # invariant to the scale of the bottleneck features (the L2 normalisation)
    with torch.no_grad():
        head.mlp[-1].weight.mul_(3.0)
        head.mlp[-1].bias.mul_(3.0)
    assert torch.allclose(head(x), out, atol=1e-5)


def test_dino_projector_is_training_only(batch):
    obj, evt, mask, labels, norm = batch
    cfg = dict(
        SMALL,
        model="transformer",
        loss="simclr_supervised",
        projector="dino",
        proj_width=32,
        proj_bottleneck=8,
        proj_layers=3,
        variational=False,
    )
    torch.manual_seed(0)
    net = build_model(cfg, 4)
    from salad.encoder.data import EventTensors
    from salad.encoder.embed import encode_all
    from salad.encoder.models import DINOHead

    assert isinstance(net.projector, DINOHead)
    out = net.eval()(obj, evt, mask)
    assert out["proj"].shape == (32, cfg["proj_dim"]) and out["mu"].shape == (32, cfg["latent_dim"])
    tensors = EventTensors(obj, evt, mask, labels)
    before, _ = encode_all(net, tensors, 16, "cpu")
    with torch.no_grad():
        for p in net.projector.parameters():
            p.add_(torch.randn_like(p))
    after, _ = encode_all(net, tensors, 16, "cpu")
    assert np.array_equal(before, after)  # the embedding never sees the head
    assert np.allclose(before, out["mu"].detach().numpy(), atol=1e-6)
    # and the head gets gradients from the supervised SimCLR loss
    net.train()
    objective, aug = build_objective(cfg), Augmenter(cfg["augmentations"], norm, "cpu")
    g = torch.Generator().manual_seed(0)
    views = [aug(obj, evt, mask, g) for _ in range(objective.n_views)]
    objective([net(*v, generator=g) for v in views], labels)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.projector.parameters())
