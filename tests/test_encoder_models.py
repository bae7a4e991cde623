"""Encoder architectures: gradients, padding mask, size, augmentations."""
import numpy as np
import pytest
import torch

from salad.encoder.augment import Augmenter
from salad.encoder.data import Normaliser, padding_mask
from salad.encoder.losses import build_objective
from salad.encoder.models import build_model, count_parameters
from salad.encoder.setups import DEFAULTS

from encoder_fixtures import toy_objects

SMALL = dict(DEFAULTS, width=16, heads=2, hl_width=8, head_width=16, proj_width=16, proj_dim=8,
             blocks=2, augmentations={"mask": 0.2})


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    raw = toy_objects(rng, 32, 2.0, 50.0, 0.3, 30.0)
    raw[0, :10] = 0.0                        # an event whose only object is MET
    evt = rng.uniform(0.5, 3, (32, 2)).astype(np.float32)
    norm = Normaliser.fit(raw, evt)
    obj, ev = norm.apply(raw, evt)
    return (torch.from_numpy(obj), torch.from_numpy(ev), torch.from_numpy(padding_mask(raw)),
            torch.arange(32) % 4, norm)


@pytest.mark.parametrize("model,loss", [("particle_transformer", "supcon"), ("transformer", "vicreg_ce"),
                                        ("mlp", "simclr"), ("particle_transformer", "simclr_supervised")])
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
        garbage[..., :7] = torch.where(mask[..., None], garbage[..., :7], torch.randn_like(garbage[..., :7]) * 50)
        assert not torch.equal(garbage, obj)
        assert torch.allclose(net.encode(garbage, evt, mask)[0], ref, atol=1e-5)
        # while a real object's values do matter
        changed = obj.clone()
        changed[mask] += 1.0
        assert not torch.allclose(net.encode(changed, evt, mask)[0], ref, atol=1e-3)


def test_paper_size_particle_transformer():
    cfg = dict(DEFAULTS, width=120, heads=8, hl_width=64, head_width=128)
    net = build_model(cfg, 13)
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
