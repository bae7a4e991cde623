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
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # |w| = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    opt = LARS([w, b], lr=0.5, weight_decay=0.1, momentum=0.9, eta=0.01)
    w.grad, b.grad = torch.tensor([[0.0, 2.0]]), torch.tensor([2.0])
    opt.step()
    g = torch.tensor([[0.3, 2.4]])  # grad + 0.1 * w
    trust = 0.01 * 5.0 / float(torch.linalg.vector_norm(g))
    torch.testing.assert_close(w.data, torch.tensor([[3.0, 4.0]]) - 0.5 * trust * g)
    torch.testing.assert_close(b.data, torch.tensor([0.0]))  # bias: plain momentum SGD, no decay
    w.grad, b.grad = torch.tensor([[0.0, 2.0]]), torch.tensor([2.0])
    opt.step()  # momentum: v = 0.9 * 2 + 2
    torch.testing.assert_close(b.data, torch.tensor([0.0 - 0.5 * 3.8]))


def test_cocktail_probabilities_keep_each_samples_full_share(tmp_path):
    paths = []
    for code, (n, w) in enumerate([(100, 1.0), (50, 0.02)], start=1):
        ids = code * 10**9 + np.arange(n)
        weight = np.full(n, w)
        weight[:10] *= 3  # unequal weights inside a sample
        write_parquet(pd.DataFrame({"event_id": ids, "weight": weight}), tmp_path / f"{code}.parquet", {})
        paths.append(tmp_path / f"{code}.parquet")
    kept = np.r_[10**9 + np.arange(0, 100, 4), 2 * 10**9 + np.arange(50)]  # sample 1 capped to 25
    prob = cocktail_probabilities(paths, kept)
    share1 = 1.0 * 90 + 3.0 * 10
    share2 = 0.02 * 40 + 0.06 * 10
    assert prob.sum() == pytest.approx(1.0)
    assert prob[:25].sum() == pytest.approx(share1 / (share1 + share2))  # cap does not change it
    assert prob[0] / prob[3] == pytest.approx(3.0)  # event 0 has 3x the weight of event 12
    draws = np.concatenate(WeightedSampler(prob, 64, seed=1).epoch(0))
    assert len(WeightedSampler(prob, 64, seed=1).epoch(0)) == 75 // 64
    assert (
        WeightedSampler(prob, 64, seed=1).epoch(2)[0] == WeightedSampler(prob, 64, seed=1).epoch(2)[0]
    ).all()
    assert (draws < 25).mean() > 0.9  # by weight, not balanced
    with pytest.raises(SaladError, match="no weight"):
        cocktail_probabilities(paths, np.array([7 * 10**9]))


def test_label_partners_share_the_label_and_differ_from_the_event():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 1, 1, 3])
    for _ in range(20):
        p = label_partners(labels)
        assert (labels[p] == labels).all()
        singles = torch.tensor([3, 8])  # labels 2 and 3 occur once
        others = torch.tensor([i for i in range(9) if i not in (3, 8)])
        assert (p[singles] == singles).all() and (p[others] != others).all()
    seen = {int(label_partners(labels)[0]) for _ in range(50)}
    assert seen == {2, 5}  # random over the class


def test_vicreg_label_positives_pair_same_class_events():
    cfg = {
        "variational": False,
        "kl_weight": 0.0,
        "positives": "labels",
        "vicreg": {"invariance": 1.0, "variance": 0.0, "covariance": 0.0, "ce_scale": 0.0},
    }
    obj = VICRegCE(cfg)
    assert obj.n_views == 1
    labels = torch.tensor([0, 0, 1, 1])
    proj = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.0]])  # constant inside a class
    out = {"proj": proj, "logits": torch.zeros(4, 2), "logvar": None, "mu": proj}
    assert obj([out], labels)["invariance"].item() == 0.0
    proj2 = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    out2 = {**out, "proj": proj2}
    assert obj([out2], labels)["invariance"].item() == pytest.approx(2 * 4.0 / 8)  # (3-1)^2 twice / (N*D)


@pytest.mark.parametrize(
    "setup,message",
    [
        ({"optimizer": "sgd"}, "optimizer"),
        ({"balance": "flat"}, "balance"),
        ({"positives": "labels", "loss": "supcon"}, "positives"),
    ],
)
def test_bad_paper_b_settings_are_named(setup, message):
    with pytest.raises(SaladError, match=message):
        resolve_setup({"setups": {"X": setup}}, "X", GROUPS)
    ok = resolve_setup({"setups": {"X": {"loss": "vicreg_ce", "positives": "labels"}}}, "X", GROUPS)
    assert ok["augmentations"] == {}  # label positives need no augmentation


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toyb")
    return root, write_toy_inputs(root, {"yy": 400, "ggH": 300, "ttH": 300, "Y400": 200})


TINY = {
    "width": 16,
    "heads": 2,
    "hl_width": 8,
    "head_width": 16,
    "proj_width": 16,
    "proj_dim": 8,
    "batch_size": 100,
    "max_epochs": 2,
    "warmup_epochs": 1,
    "patience": 10,
    "signals": False,
    "variational": False,
    "latent_dim": 4,
}


@pytest.mark.parametrize(
    "name,over",
    [
        (
            "supsimclr_mlp",
            {
                "model": "mlp",
                "loss": "simclr_supervised",
                "optimizer": "lars",
                "lr": 0.5,
                "weight_decay": 1e-6,
                "balance": "weighted",
                "augmentations": {"mask": 0.2},
                "min_lr_ratio": 0.001,
            },
        ),
        (
            "supvicreg_tf",
            {
                "model": "transformer",
                "loss": "vicreg_ce",
                "positives": "labels",
                "optimizer": "adamw",
                "lr": 1e-3,
                "weight_decay": 0.01,
                "balance": "weighted",
                "warmup_epochs": 0,
                "dropout": 0.025,
            },
        ),
        (
            "supsimclr_tf",
            {
                "model": "transformer",
                "loss": "simclr_supervised",
                "projector": "dino",
                "proj_width": 16,
                "proj_bottleneck": 8,
                "proj_layers": 3,
                "optimizer": "adam",
                "lr": 1e-3,
                "weight_decay": 1e-6,
                "balance": "weighted",
                "augmentations": {"mask": 0.2},
                "dropout": 0.025,
                "min_lr_ratio": 0.001,
            },
        ),
    ],
)
def test_paper_b_setups_train_on_background_only(toy, tmp_path, name, over):
    root, groups = toy
    cfg = resolve_setup({"defaults": TINY, "setups": {name: over}}, name, groups)
    assert set(cfg["train_samples"]) == {"yy", "ggH", "ttH"}  # background only
    pre, spl = toy_paths(root, cfg["train_samples"])
    ckpt = train_encoder(cfg, pre, spl, 1, tmp_path / "model.pt", tmp_path / "history.parquet")
    hist = pd.read_parquet(tmp_path / "history.parquet")
    assert ckpt["groups"] == [0, 1, 4] and len(hist) == 2 and np.isfinite(hist["train_loss"]).all()
    assert math.isfinite(ckpt["best_val_loss"])
    from salad.encoder.train import load_checkpoint

    model, _, _ = load_checkpoint(tmp_path / "model.pt")  # the head's state dict round-trips
    assert type(model.projector).__name__ == ("DINOHead" if over.get("projector") == "dino" else "Sequential")


# ---------------------------------------------------------------- config/paper.yaml plans paper B's scans
TABLE_II = {4: 0.9, 6: 0.8, 8: 0.6, 16: 0.5, 32: 0.4, 64: 0.3}  # self-supervised SimCLR: D -> tau
TABLE_III = {2: 2, 4: 4, 8: 4, 16: 8, 24: 8, 32: 16}  # supervised VICReg: D -> heads


def _config(name):
    from salad.config import REPO, load_config, load_yaml

    cfg = load_config(REPO / "config" / name)
    table = load_yaml(REPO / cfg["processes"])["processes"]
    return cfg, {s: int(table[s]["group"]) for s in cfg["samples"]}


def test_paper_yaml_plans_paper_b_scans():
    cfg, groups = _config("paper.yaml")
    fam = {f: {int(d): s for d, s in m.items()} for f, m in cfg["dimension_scan"]["families"].items()}
    assert sorted(fam["simclr"]) == sorted(TABLE_II) and sorted(fam["supervised_vicreg"]) == sorted(TABLE_III)
    enc = cfg["encoder"]
    for d, setup in fam["simclr"].items():
        r = resolve_setup(enc, setup, groups)
        assert (r["latent_dim"], r["temperature"], r["loss"], r["model"]) == (
            d,
            TABLE_II[d],
            "simclr",
            "mlp",
        ), setup
        assert r["optimizer"] == "lars" and r["balance"] == "weighted"
    for d, setup in fam["supervised_vicreg"].items():
        r = resolve_setup(enc, setup, groups)
        assert (r["latent_dim"], r["heads"], r["loss"], r["positives"], r["model"]) == (
            d,
            TABLE_III[d],
            "vicreg_ce",
            "labels",
            "transformer",
        ), setup
        assert r["blocks"] == 4 and r["mlp_ratio"] == 16 and r["batch_size"] == 64
    tf = resolve_setup(enc, "supsimclr_tf", groups)  # Tables I, IV, V
    assert (tf["model"], tf["loss"], tf["projector"], tf["optimizer"]) == (
        "transformer",
        "simclr_supervised",
        "dino",
        "adam",
    )
    assert (tf["width"], tf["heads"], tf["width"] * tf["mlp_ratio"], tf["blocks"], tf["dropout"]) == (
        64,
        8,
        256,
        4,
        0.025,
    )
    assert (tf["proj_dim"], tf["proj_width"], tf["proj_bottleneck"], tf["proj_layers"]) == (64, 256, 64, 3)
    assert (tf["batch_size"], tf["max_epochs"], tf["lr"], tf["weight_decay"]) == (1024, 50, 1e-3, 1e-6)
    for key in ("nplm", "linear_eval"):
        reps = set(cfg[key]["representations"])
        missing = ({s for m in fam.values() for s in m.values()} | {"supsimclr_tf"}) - reps
        assert not missing, f"{key}.representations lacks {sorted(missing)}"


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "test.yaml"])
def test_nplm_and_scan_families_are_background_only(name):
    """NPLM representations and paper B scan families: background-only embeddings or baselines."""
    cfg, groups = _config(name)
    families = (cfg.get("dimension_scan") or {}).get("families") or {}
    names = set(cfg["nplm"]["representations"]) | {s for m in families.values() for s in m.values()}
    for rep in sorted(names):
        if rep.startswith("baseline_"):
            continue
        train = resolve_setup(cfg["encoder"], rep, groups)["train_samples"]
        assert all(g >= 0 for g in train.values()), f"{name}: {rep} trains on BSM samples"
