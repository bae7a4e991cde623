"""Paper B's encoder family: LARS, realistic-cocktail sampling, label-defined VICReg positives,
setup validation and a short background-only training of each configured paper-B model."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from encoder_fixtures import toy_paths, write_toy_inputs
from salad.artifacts import write_parquet
from salad.encoder.lars import LARS
from salad.encoder.losses import VICRegCE, label_partners
from salad.encoder.sampling import WeightedSampler, cocktail_probabilities
from salad.encoder.setups import resolve_setup
from salad.encoder.train import train_encoder
from salad.errors import SaladError

torch.set_num_threads(1)
GROUPS = {"yy": 0, "ggH": 1, "ttH": 4, "Y400": -6}


def test_lars_step_matches_hand_computation():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))          # |w| = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    opt = LARS([w, b], lr=0.5, weight_decay=0.1, momentum=0.9, eta=0.01)
    w.grad, b.grad = torch.tensor([[0.0, 2.0]]), torch.tensor([2.0])
    opt.step()
    g = torch.tensor([[0.3, 2.4]])                               # grad + 0.1 * w
    trust = 0.01 * 5.0 / float(torch.linalg.vector_norm(g))
    torch.testing.assert_close(w.data, torch.tensor([[3.0, 4.0]]) - 0.5 * trust * g)
    torch.testing.assert_close(b.data, torch.tensor([0.0]))      # bias: plain momentum SGD, no decay
    w.grad, b.grad = torch.tensor([[0.0, 2.0]]), torch.tensor([2.0])
    opt.step()                                                   # momentum: v = 0.9 * 2 + 2
    torch.testing.assert_close(b.data, torch.tensor([0.0 - 0.5 * 3.8]))


def test_cocktail_probabilities_keep_each_samples_full_share(tmp_path):
    paths = []
    for code, (n, w) in enumerate([(100, 1.0), (50, 0.02)], start=1):
        ids = code * 10**9 + np.arange(n)
        weight = np.full(n, w)
        weight[:10] *= 3                                         # unequal weights inside a sample
        write_parquet(pd.DataFrame({"event_id": ids, "weight": weight}), tmp_path / f"{code}.parquet", {})
        paths.append(tmp_path / f"{code}.parquet")
    kept = np.r_[10**9 + np.arange(0, 100, 4), 2 * 10**9 + np.arange(50)]   # sample 1 capped to 25
    prob = cocktail_probabilities(paths, kept)
    share1 = 1.0 * 90 + 3.0 * 10
    share2 = 0.02 * 40 + 0.06 * 10
    assert prob.sum() == pytest.approx(1.0)
    assert prob[:25].sum() == pytest.approx(share1 / (share1 + share2))      # cap does not change it
    assert prob[0] / prob[3] == pytest.approx(3.0)             # event 0 has 3x the weight of event 12
    draws = np.concatenate(WeightedSampler(prob, 64, seed=1).epoch(0))
    assert len(WeightedSampler(prob, 64, seed=1).epoch(0)) == 75 // 64
    assert (WeightedSampler(prob, 64, seed=1).epoch(2)[0] == WeightedSampler(prob, 64,
                                                                             seed=1).epoch(2)[0]).all()
    assert (draws < 25).mean() > 0.9                                         # by weight, not balanced
    with pytest.raises(SaladError, match="no weight"):
        cocktail_probabilities(paths, np.array([7 * 10**9]))


def test_label_partners_share_the_label_and_differ_from_the_event():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 1, 1, 3])
    for _ in range(20):
        p = label_partners(labels)
        assert (labels[p] == labels).all()
        singles = torch.tensor([3, 8])                            # labels 2 and 3 occur once
        others = torch.tensor([i for i in range(9) if i not in (3, 8)])
        assert (p[singles] == singles).all() and (p[others] != others).all()
    seen = {int(label_partners(labels)[0]) for _ in range(50)}
    assert seen == {2, 5}                                         # random over the class


def test_vicreg_label_positives_pair_same_class_events():
    cfg = {"variational": False, "kl_weight": 0.0, "positives": "labels",
           "vicreg": {"invariance": 1.0, "variance": 0.0, "covariance": 0.0, "ce_scale": 0.0}}
    obj = VICRegCE(cfg)
    assert obj.n_views == 1
    labels = torch.tensor([0, 0, 1, 1])
    proj = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.0]])  # constant inside a class
    out = {"proj": proj, "logits": torch.zeros(4, 2), "logvar": None, "mu": proj}
    assert obj([out], labels)["invariance"].item() == 0.0
    proj2 = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    out2 = {**out, "proj": proj2}
    assert obj([out2], labels)["invariance"].item() == pytest.approx(2 * 4.0 / 8)   # (3-1)^2 twice / (N*D)


@pytest.mark.parametrize("setup,message", [
    ({"optimizer": "sgd"}, "optimizer"), ({"balance": "flat"}, "balance"),
    ({"positives": "labels", "loss": "supcon"}, "positives")])
def test_bad_paper_b_settings_are_named(setup, message):
    with pytest.raises(SaladError, match=message):
        resolve_setup({"setups": {"X": setup}}, "X", GROUPS)
    ok = resolve_setup({"setups": {"X": {"loss": "vicreg_ce", "positives": "labels"}}}, "X", GROUPS)
    assert ok["augmentations"] == {}                              # label positives need no augmentation


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toyb")
    return root, write_toy_inputs(root, {"yy": 400, "ggH": 300, "ttH": 300, "Y400": 200})


TINY = {"width": 16, "heads": 2, "hl_width": 8, "head_width": 16, "proj_width": 16, "proj_dim": 8,
        "batch_size": 100, "max_epochs": 2, "warmup_epochs": 1, "patience": 10, "signals": False,
        "variational": False, "latent_dim": 4}


@pytest.mark.parametrize("name,over", [
    ("supsimclr_mlp", {"model": "mlp", "loss": "simclr_supervised", "optimizer": "lars", "lr": 0.5,
                       "weight_decay": 1e-6, "balance": "weighted", "augmentations": {"mask": 0.2},
                       "min_lr_ratio": 0.001}),
    ("supvicreg_tf", {"model": "transformer", "loss": "vicreg_ce", "positives": "labels",
                      "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "balance": "weighted",
                      "warmup_epochs": 0, "dropout": 0.025})])
def test_paper_b_setups_train_on_background_only(toy, tmp_path, name, over):
    root, groups = toy
    cfg = resolve_setup({"defaults": TINY, "setups": {name: over}}, name, groups)
    assert set(cfg["train_samples"]) == {"yy", "ggH", "ttH"}       # background only
    pre, spl = toy_paths(root, cfg["train_samples"])
    ckpt = train_encoder(cfg, pre, spl, 1, tmp_path / "model.pt", tmp_path / "history.parquet")
    hist = pd.read_parquet(tmp_path / "history.parquet")
    assert ckpt["groups"] == [0, 1, 4] and len(hist) == 2 and np.isfinite(hist["train_loss"]).all()
    assert math.isfinite(ckpt["best_val_loss"])
